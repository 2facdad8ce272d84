import Corral
#if canImport(Glibc)
import Glibc
#endif

/// Who a spec may run as: `user` only from `--allow-user`, and `group` only
/// the allowed user's own primary group or one on `--allow-group`. Names
/// and numeric ids are compared as ids, so `"group": 42` is `shadow`.
/// Only when the agent runs as root; otherwise any `user`/`group` is 400.
struct IdentityPolicy: Sendable {
    let allowedUsers: Set<String>
    let allowedGroups: Set<String>
    var agentIsRoot = getuid() == 0

    func check(user: UserIdentity?, group: GroupIdentity?) throws(APIError) {
        guard user != nil || group != nil else { return }
        guard agentIsRoot else {
            throw APIError.badSpec(field: user != nil ? "user" : "group",
                                   message: "the agent does not run as root, so it cannot switch users")
        }
        guard let user else {
            throw APIError(.forbidden, "user_not_allowed", "group: allowed only together with an allowed \"user\"", field: "group")
        }
        let account = IdentityPolicy.account(user)
        let allowed = allowedUsers.contains(IdentityPolicy.describe(user))
            || account.map { found in allowedUsers.contains { IdentityPolicy.account(IdentityPolicy.userIdentity($0))?.uid == found.uid } } == true
        guard allowed else {
            throw APIError(.forbidden, "user_not_allowed",
                           "user: \"\(IdentityPolicy.describe(user))\" is not on the agent's --allow-user list", field: "user")
        }
        guard let group else { return }
        let allowedGIDs = Set((account.map { [$0.gid] } ?? [])
            + allowedGroups.compactMap { UserLookup.groupID(for: IdentityPolicy.groupIdentity($0)) })
        guard let gid = UserLookup.groupID(for: group), allowedGIDs.contains(gid) else {
            throw APIError(.forbidden, "group_not_allowed",
                           "group: \"\(IdentityPolicy.describe(group))\" is not allowed; a spec may name its user's primary group"
                               + (account.map { " (gid \($0.gid))" } ?? "") + " or a group on the agent's --allow-group list",
                           field: "group")
        }
    }

    static func userIdentity(_ text: String) -> UserIdentity {
        UInt32(text).map(UserIdentity.id) ?? .name(text)
    }

    static func groupIdentity(_ text: String) -> GroupIdentity {
        UInt32(text).map(GroupIdentity.id) ?? .name(text)
    }

    private static func describe(_ user: UserIdentity) -> String { user.description }

    private static func describe(_ group: GroupIdentity) -> String { group.description }

    /// The uid and primary gid from the passwd database; nil for an unknown
    /// user (a numeric uid without an entry has no primary group to allow).
    private static func account(_ user: UserIdentity) -> (uid: UInt32, gid: UInt32)? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status: Int32
        if let id = user.id {
            status = getpwuid_r(id, &entry, &buffer, buffer.count, &found)
        } else {
            status = getpwnam_r(user.name ?? "", &entry, &buffer, buffer.count, &found)
        }
        guard status == 0, found != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }
}
