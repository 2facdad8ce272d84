#if canImport(Glibc)
import Glibc
#endif

/// How a job ended. A non-zero exit code is a normal outcome, not an error.
///
/// An enum on purpose, unlike the choices in a spec: consumers switch over
/// it, and its cases are the closed set of ways a process can end under a
/// runner — by itself, by a signal, stopped by Corral for a reason (time,
/// cancellation), never started, or unknowable. Details that may grow ride
/// in the associated values (`Signal`, `SpawnFailure.Stage` are structs).
public enum Outcome: Hashable, Sendable {
    /// The leader exited by itself with this code.
    case exited(Int32)
    /// The leader was killed by a signal that Corral did not send.
    case signaled(Signal, coreDumped: Bool)
    /// The deadline passed; Corral stopped the job.
    case timedOut
    /// The job was cancelled (by its handle, its task, or runner shutdown)
    /// before it finished; if it had started, Corral stopped it.
    case cancelled
    /// The job could not be started.
    case failedToStart(SpawnFailure)
    /// The leader was reaped by someone else in this process (a
    /// `waitpid(-1)`, or SIGCHLD set to SIG_IGN) before Corral could read its
    /// status, which is therefore unknown.
    case lost(reason: String)
}

/// How the leader process itself terminated: the two ways `waitid` reports
/// (an enum on purpose: the kernel has no third).
public enum TerminationStatus: Hashable, Sendable {
    case exited(Int32)
    case signaled(Signal, coreDumped: Bool)
}

/// Why a job could not be started: the errno, the step that failed, and a
/// message for a person.
public struct SpawnFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The step that failed.
    public struct Stage: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let lookup = Stage(name: "lookup")         // finding the executable in PATH
        public static let user = Stage(name: "user")             // resolving the user or group
        public static let resources = Stage(name: "resources")   // pipes, descriptors
        public static let clone = Stage(name: "clone")
        public static let setsid = Stage(name: "setsid")
        public static let stdio = Stage(name: "stdio")
        public static let chdir = Stage(name: "chdir")
        public static let setgroups = Stage(name: "setgroups")
        public static let setgid = Stage(name: "setgid")
        public static let setuid = Stage(name: "setuid")
        public static let rlimit = Stage(name: "rlimit")
        public static let closeDescriptors = Stage(name: "close-descriptors")
        public static let exec = Stage(name: "exec")
        public static let cgroup = Stage(name: "cgroup")
        public static let parentDeath = Stage(name: "parent-death")  // the runner died during the spawn
        public static let priority = Stage(name: "priority")     // putting the host's nice value back
        public var description: String { name }
    }

    /// The errno (`ENOENT`, `EACCES`, …).
    public let errno: Int32
    public let stage: Stage
    public let message: String

    public init(errno: Int32, stage: Stage, message: String) {
        self.errno = errno
        self.stage = stage
        self.message = message
    }

    public var description: String { message }
}

extension SpawnFailure {
    /// `strerror` for `code`.
    static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
