# Sourced by scripts/test and scripts/corral: installs what a fresh Debian
# machine lacks to build Corral (libuv1-dev, libsqlite3-dev, pkg-config), and checks for the
# Swift toolchain, which Debian does not package.
ensure_deps() {
    local missing=()
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if ! pkg-config --exists libuv 2>/dev/null; then missing+=(libuv1-dev); fi
    if ! pkg-config --exists sqlite3 2>/dev/null; then missing+=(libsqlite3-dev); fi
    command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        echo "corral: installing ${missing[*]}" >&2
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "corral: no Swift toolchain on PATH; install Swift 6.1 or newer and try again" >&2
        exit 125
    fi
}
