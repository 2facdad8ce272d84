import Corral
#if canImport(Glibc)
import Glibc
#endif

/// The exit codes of `corral run`, as timeout(1) and env(1) use them.
enum ExitCodes {
    static let timedOut: Int32 = 124
    static let corralError: Int32 = 125
    static let cannotExecute: Int32 = 126
    static let notFound: Int32 = 127

    /// The exit code that reports a job's result.
    static func code(for result: JobResult) -> Int32 {
        switch result.outcome {
        case .exited(let code): return code
        case .signaled(let signal, _): return 128 + signal.rawValue
        case .timedOut: return timedOut
        case .cancelled: return 128 + SIGINT
        case .lost: return corralError
        case .failedToStart(let failure):
            switch failure.stage {
            case .exec, .lookup: return failure.errno == ENOENT ? notFound : cannotExecute
            default: return corralError  // chdir, user, resources: corral could not set the job up
            }
        }
    }
}
