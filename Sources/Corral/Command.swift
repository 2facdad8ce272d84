/// What a job runs.
public enum Command: Hashable, Sendable {
    /// An executable and its arguments (not including `argv[0]`). A name
    /// without a `/` is looked up in the job's `PATH`, as `execvp` does; no
    /// shell is involved, so nothing is expanded.
    case executable(String, arguments: [String] = [])
    /// Shell text, run as `/bin/sh -c TEXT`.
    case shell(String)

    /// `argv`, including `argv[0]`.
    var argv: [String] {
        switch self {
        case .executable(let name, let arguments): return [name] + arguments
        case .shell(let text): return ["/bin/sh", "-c", text]
        }
    }

    /// The name or path that is executed.
    var program: String {
        switch self {
        case .executable(let name, _): return name
        case .shell: return "/bin/sh"
        }
    }
}
