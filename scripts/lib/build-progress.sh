# Sourced by scripts/corral, scripts/test and scripts/release.
#
# swift_build LOG [swift build arguments...]
#   Runs `swift build` with the arguments, keeps its whole output in LOG and
#   shows on stderr what a person waiting needs: dependency fetching, a
#   progress line ("[812/1460] Compiling GRDB ...", rewritten in place on a
#   terminal, every 20 s otherwise), every error and warning as it comes, and
#   at once when SwiftPM waits for another build holding the lock on the same
#   build directory (SwiftPM's own message would otherwise be swallowed and
#   the build would hang silently). Returns swift build's exit status.
swift_build() {
    local log=$1; shift
    : >"$log"
    local tty=0
    [ -t 2 ] && tty=1
    { swift build "$@" 2>&1; echo "__swift_build_status=$?"; } | {
        local line part pending="" shown=0 last=$SECONDS started=$SECONDS told_lock=0
        while :; do
            # SwiftPM's lock message has no newline until the lock is free:
            # read with a timeout and look at the partial line meanwhile.
            if IFS= read -r -t 1 part; then
                line="$pending$part"
                pending=""
            elif [ $? -gt 128 ]; then
                pending="$pending$part"
                if [ "$told_lock" = 0 ] && [[ $pending == *"is already running using"* ]]; then
                    [ "$shown" = 1 ] && { printf '\r\033[K' >&2; shown=0; }
                    echo "build: waiting for the lock: another SwiftPM process is building in the same directory" >&2
                    echo "       (${pending%%, waiting*})" >&2
                    told_lock=1
                fi
                continue
            else
                [ -z "$pending$part" ] && break
                line="$pending$part"
                pending=""
            fi
            case $line in
                __swift_build_status=*)
                    [ "$shown" = 1 ] && printf '\r\033[K' >&2
                    local status=${line#*=}
                    if [ "$status" = 0 ] && [ $((SECONDS - started)) -ge 5 ]; then
                        echo "build: done in $((SECONDS - started)) s" >&2
                    fi
                    exit "$status" ;;
            esac
            printf '%s\n' "$line" >>"$log"
            case $line in
                *"is already running using"*"waiting until"*"[0/"*|*"is already running using"*)
                    # Said while waiting already (above); what follows on the line is the build.
                    line=${line##*execution...}
                    [ "$told_lock" = 0 ] && echo "build: waited for another SwiftPM process to release the build directory" >&2
                    told_lock=1 ;;
            esac
            case $line in
                "["[0-9]*/[0-9]*"]"*)
                    if [ "$tty" = 1 ]; then
                        printf '\r\033[Kbuild: %.*s' "$(( ${COLUMNS:-100} - 8 ))" "$line" >&2
                        shown=1
                    elif [ $((SECONDS - last)) -ge 20 ]; then
                        echo "build: $line" >&2
                        last=$SECONDS
                    fi ;;
                *"error:"*|*"warning: "*|Fetching*|"Computing version"*|"Creating working copy"*)
                    [ "$shown" = 1 ] && { printf '\r\033[K' >&2; shown=0; }
                    echo "$line" >&2 ;;
            esac
        done
        exit 1
    }
}
