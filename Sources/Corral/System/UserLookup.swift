#if canImport(Glibc)
import Glibc
#endif

/// The ids a job runs as, resolved from names before the spawn.
struct ResolvedIdentity: Hashable, Sendable {
    var uid: UInt32?
    var gid: UInt32?
    /// Supplementary groups; set whenever the uid or gid changes.
    var groups: [UInt32]
}

/// Resolves user and group names through NSS (`getpwnam_r`, `getgrnam_r`).
/// This may block (LDAP, …), so it runs on the submitting thread, never on
/// the event loop.
package enum UserLookup {
    static func resolve(user: UserIdentity?, group: GroupIdentity?) -> Result<ResolvedIdentity?, SpawnFailure> {
        if user == nil && group == nil { return .success(nil) }
        var identity = ResolvedIdentity(uid: nil, gid: nil, groups: [])
        if let user {
            guard let entry = passwd(for: user) else {
                return .failure(SpawnFailure(errno: ENOENT, stage: .user, message: "unknown user \(describe(user))"))
            }
            identity.uid = entry.uid
            identity.gid = entry.gid
            identity.groups = groupList(user: entry.name, primary: entry.gid)
        }
        if let group {
            guard let gid = groupID(for: group) else {
                return .failure(SpawnFailure(errno: ENOENT, stage: .user, message: "unknown group \(describe(group))"))
            }
            identity.gid = gid
            identity.groups = [gid]
        }
        return .success(identity)
    }

    private static func describe(_ user: UserIdentity) -> String {
        switch user.kind {
        case .name(let name): return "'\(name)'"
        case .id(let id): return "id \(id)"
        }
    }

    private static func describe(_ group: GroupIdentity) -> String {
        switch group.kind {
        case .name(let name): return "'\(name)'"
        case .id(let id): return "id \(id)"
        }
    }

    private static func passwd(for user: UserIdentity) -> (name: String, uid: UInt32, gid: UInt32)? {
        var entry = Glibc.passwd()
        var found: UnsafeMutablePointer<Glibc.passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status: Int32
        switch user.kind {
        case .name(let name): status = getpwnam_r(name, &entry, &buffer, buffer.count, &found)
        case .id(let id): status = getpwuid_r(id, &entry, &buffer, buffer.count, &found)
        }
        guard status == 0, found != nil else {
            // A numeric id without a passwd entry is still a valid uid.
            if let id = user.id { return (String(id), id, id) }
            return nil
        }
        return (String(cString: entry.pw_name), entry.pw_uid, entry.pw_gid)
    }

    /// The gid of a group: a number as it is, a name through NSS; nil for
    /// an unknown name. The agent's identity policy uses it too.
    package static func groupID(for group: GroupIdentity) -> UInt32? {
        switch group.kind {
        case .id(let id): return id
        case .name(let name):
            var entry = Glibc.group()
            var found: UnsafeMutablePointer<Glibc.group>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            guard getgrnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
            return entry.gr_gid
        }
    }

    private static func groupList(user: String, primary: UInt32) -> [UInt32] {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, primary, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(user, primary, &groups, &count) >= 0 else { return [primary] }
        }
        return Array(groups.prefix(Int(count)))
    }
}
