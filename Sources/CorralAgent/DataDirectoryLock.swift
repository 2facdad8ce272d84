import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive advisory lock (`flock`) on `agent.lock` in the data
/// directory, held from before the journal is opened until the agent exits,
/// so that two agents never share one journal: a second one would take the
/// first one's running jobs for lost and kill them. The descriptor is
/// close-on-exec, so no job inherits the lock and outlives the agent with it.
final class DataDirectoryLock: Sendable {
    let path: String
    private let fd: Int32

    static let fileName = DataDirectoryLockFile.name

    init(directory: String) throws(AgentError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AgentError("cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        path = (directory as NSString).appendingPathComponent(DataDirectoryLock.fileName)
        let opened = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard opened >= 0 else {
            throw AgentError("cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        var status: Int32
        repeat { status = flock(opened, LOCK_EX | LOCK_NB) } while status != 0 && errno == EINTR
        guard status == 0 else {
            let error = errno
            let holder = DataDirectoryLockFile.holder(opened)
            close(opened)
            guard error == EWOULDBLOCK else {
                throw AgentError("cannot lock \(path): \(String(cString: strerror(error)))")
            }
            throw AgentError("the data directory \(directory) is in use by another corral agent"
                + (holder.map { " (pid \($0))" } ?? "")
                + "; two agents must not share a journal. Stop that agent, or pass another --data-dir")
        }
        fd = opened
        // The holder's pid, for the message a second agent prints.
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { close(fd) }
}

/// The lock file as others see it (`corral agent drain` finds the agent
/// to signal through it).
public enum DataDirectoryLockFile {
    public static let name = "agent.lock"

    /// The pid the holder wrote into the open lock file, if any.
    public static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
