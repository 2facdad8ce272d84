/// How a job's processes are held together, so that none outlives it. A
/// struct with static values rather than an enum, so a new tier breaks no
/// caller.
public struct Containment: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case cgroup
        case processGroup
    }

    let kind: Kind

    /// A cgroup v2 leaf per job: every descendant, even one that called
    /// `setsid()`, is inside it and dies with `cgroup.kill`.
    public static let cgroup = Containment(kind: .cgroup)
    /// The job's process group, plus a sweep for escapees (processes that
    /// left the group but still carry the job's `CORRAL_JOB_ID`).
    public static let processGroup = Containment(kind: .processGroup)

    public var description: String {
        switch kind {
        case .cgroup: "cgroup"
        case .processGroup: "processGroup"
        }
    }
}

/// Which containment a runner uses.
public struct ContainmentSetting: Hashable, Sendable {
    enum Choice: Hashable, Sendable {
        case automatic
        case processGroup
        case cgroup(String)
    }

    let choice: Choice

    /// A cgroup v2 leaf per job when a writable cgroup v2 hierarchy is found
    /// (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host),
    /// under Corral's own directory beside this process's cgroup; process
    /// groups otherwise. The default.
    public static let automatic = ContainmentSetting(choice: .automatic)
    /// Process groups and the escapee sweep only.
    public static let processGroup = ContainmentSetting(choice: .processGroup)
    /// cgroup v2 leaves under this directory (Corral creates a directory of
    /// its own in it); process groups if it is not a writable cgroup v2
    /// directory.
    public static func cgroup(under directory: String) -> ContainmentSetting {
        ContainmentSetting(choice: .cgroup(directory))
    }
}

/// What containment a runner settled on at start, and why.
public struct ContainmentReport: Hashable, Sendable {
    public let tier: Containment
    /// The cgroup directory holding this runner's job leaves (cgroup tier).
    public let directory: String?
    /// Why the cgroup tier is not in use, when it was wanted but unavailable.
    public let note: String?
    /// Whether the cgroup2 mount has `nsdelegate`. Without it, a job running
    /// as root can move itself out of its leaf (the marker sweep still finds
    /// it unless it also clears its environment: docs/containment.md).
    public var nsdelegate = false
}

/// A process, as a result names it.
public struct ProcessSummary: Hashable, Sendable, CustomStringConvertible {
    public let pid: Int32
    /// The command name (`/proc/<pid>/comm`).
    public let command: String

    public var description: String { "\(pid) (\(command))" }
}

/// A process that still held the write end of a job's output pipe when
/// Corral force-closed it: the answer to "why did my job hang?".
public struct PipeHolder: Hashable, Sendable, CustomStringConvertible {
    public let process: ProcessSummary
    /// Whether Corral killed it (it belonged to the job and the job's policy
    /// kills what remains).
    public let killed: Bool

    public var description: String { "\(process)\(killed ? ", killed" : ", left running")" }
}
