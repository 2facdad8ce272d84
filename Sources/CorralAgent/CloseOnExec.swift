import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SwiftNIO opens its listening socket without `SOCK_CLOEXEC` (and accepts
/// without it too), and Hummingbird offers no way to hand it a socket made
/// otherwise. The agent marks the listening socket close-on-exec once it
/// listens. Accepted connections are short-lived and are not marked: every
/// job is spawned through Corral's spawn path, whose child closes every
/// descriptor above 2 (`close_range`) before `exec`.
enum CloseOnExec {
    /// Sets `FD_CLOEXEC` on every socket of this process above 2 that lacks
    /// it; returns how many it marked.
    @discardableResult
    static func markSockets() -> Int {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return 0 }
        var marked = 0
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0, flags & FD_CLOEXEC == 0,
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                  target.hasPrefix("socket:") else { continue }
            if fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 { marked += 1 }
        }
        return marked
    }
}
