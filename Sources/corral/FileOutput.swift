import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writes whole buffers to a file descriptor, from any thread, one writer
/// at a time. A non-blocking descriptor (left so by ssh or node) is waited
/// on, not given up on; every other failure is thrown, so the caller can
/// tell the user what was lost.
final class FileOutput: Sendable {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let lock = Mutex(())

    static let standardOutput = FileOutput(fd: STDOUT_FILENO, owns: false)
    static let standardError = FileOutput(fd: STDERR_FILENO, owns: false)

    init(fd: Int32, owns: Bool) {
        self.fd = fd
        self.ownsDescriptor = owns
    }

    /// Opens (creating it if need be) without truncating: a command that
    /// writes several files opens them all before it empties any, so one
    /// that cannot be opened leaves the others as they were.
    static func open(_ path: String) throws(CLIError) -> FileOutput {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        return FileOutput(fd: fd, owns: true)
    }

    /// Empties a regular file (what O_TRUNC would have done; a FIFO or a
    /// device is left as it is, as O_TRUNC leaves it). `path` names it in
    /// the error: old bytes left after the new ones would be a silent lie.
    func truncate(_ path: String) throws(CLIError) {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        guard status.st_mode & S_IFMT == S_IFREG else { return }
        guard ftruncate(fd, 0) == 0 else { throw CLIError("cannot empty \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { if ownsDescriptor { close(fd) } }

    var isTerminal: Bool { isatty(fd) == 1 }

    /// Writes every byte, or throws what stopped it.
    func write(_ bytes: [UInt8]) throws(WriteError) {
        let failure: Int32? = lock.withLock { _ in
            bytes.withUnsafeBytes { buffer -> Int32? in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written >= 0 {
                        offset += written
                        continue
                    }
                    switch errno {
                    case EINTR: continue
                    case EAGAIN, EWOULDBLOCK:
                        var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&ready, 1, -1)
                    case let code: return code
                    }
                }
                return nil
            }
        }
        if let failure { throw WriteError(code: failure) }
    }

    func write(_ text: String) throws(WriteError) { try write(Array(text.utf8)) }

    func writeLine(_ text: String) throws(WriteError) { try write(Array((text + "\n").utf8)) }

    /// For messages to the user on stderr: if stderr itself fails there is
    /// nowhere left to say so.
    func say(_ line: String) { try? writeLine(line) }

    /// Says it only if it can be written without waiting: for last words
    /// that must not block an exit on a reader that never reads.
    func sayIfWritable(_ line: String) {
        var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&ready, 1, 0) == 1, ready.revents & Int16(POLLOUT) != 0 else { return }
        _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
    }
}

/// Why a write failed: the errno, and whether the reader went away.
struct WriteError: Error, CustomStringConvertible {
    let code: Int32
    /// EPIPE: nobody reads any more.
    var readerGone: Bool { code == EPIPE }
    var description: String { String(cString: strerror(code)) }
}

/// A message for the user, ending corral with exit code 125.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
