/// A user to run a job as, by name or by id. Needs root. A struct with
/// static factories rather than an enum, so a new way to name a user
/// breaks no caller.
public struct UserIdentity: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case name(String)
        case id(UInt32)
    }

    let kind: Kind

    public static func name(_ name: String) -> UserIdentity { UserIdentity(kind: .name(name)) }
    public static func id(_ id: UInt32) -> UserIdentity { UserIdentity(kind: .id(id)) }

    /// The name, when given by name.
    public var name: String? { if case .name(let name) = kind { name } else { nil } }
    /// The uid, when given by id.
    public var id: UInt32? { if case .id(let id) = kind { id } else { nil } }

    public var description: String { name ?? id.map(String.init) ?? "" }
}

/// A group to run a job as, by name or by id. Needs root. A struct, as
/// `UserIdentity` is.
public struct GroupIdentity: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case name(String)
        case id(UInt32)
    }

    let kind: Kind

    public static func name(_ name: String) -> GroupIdentity { GroupIdentity(kind: .name(name)) }
    public static func id(_ id: UInt32) -> GroupIdentity { GroupIdentity(kind: .id(id)) }

    /// The name, when given by name.
    public var name: String? { if case .name(let name) = kind { name } else { nil } }
    /// The gid, when given by id.
    public var id: UInt32? { if case .id(let id) = kind { id } else { nil } }

    public var description: String { name ?? id.map(String.init) ?? "" }
}

/// What happens to the rest of a job's process group when its leader
/// exits. A struct with static values rather than an enum, so adding a
/// policy breaks no caller.
public struct LingeringPolicy: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case kill
        case leaveRunning
    }

    let kind: Kind

    /// Kill whatever remains of the group with SIGKILL (the default).
    public static let kill = LingeringPolicy(kind: .kill)
    /// Leave it running: for jobs that start daemons on purpose. The job
    /// still completes once the drain timeout after the leader's exit has
    /// passed, with its pipes force-closed if the daemons still hold them.
    public static let leaveRunning = LingeringPolicy(kind: .leaveRunning)

    public var description: String {
        switch kind {
        case .kill: "kill"
        case .leaveRunning: "leave_running"
        }
    }
}
