/// A user to run a job as, by name or by id. Needs root.
public enum UserIdentity: Hashable, Sendable {
    case name(String)
    case id(UInt32)
}

/// A group to run a job as, by name or by id. Needs root.
public enum GroupIdentity: Hashable, Sendable {
    case name(String)
    case id(UInt32)
}

/// What happens to the rest of a job's process group when its leader exits.
public enum LingeringPolicy: Hashable, Sendable {
    /// Kill whatever remains of the group with SIGKILL (the default).
    case kill
    /// Leave it running: for jobs that start daemons on purpose. The job
    /// still completes once the drain timeout after the leader's exit has
    /// passed, with its pipes force-closed if the daemons still hold them.
    case leaveRunning
}
