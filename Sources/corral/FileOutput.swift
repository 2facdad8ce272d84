import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Writes whole buffers to a file descriptor, from any thread, one writer
/// at a time. A closed reader (EPIPE) stops further writes quietly.
final class FileOutput: Sendable {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let lock = Mutex<Bool>(true)  // still writable

    static let standardOutput = FileOutput(fd: STDOUT_FILENO, owns: false)
    static let standardError = FileOutput(fd: STDERR_FILENO, owns: false)

    init(fd: Int32, owns: Bool) {
        self.fd = fd
        self.ownsDescriptor = owns
    }

    /// Opens (creating or truncating) a file for writing.
    static func create(_ path: String) throws(CLIError) -> FileOutput {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        return FileOutput(fd: fd, owns: true)
    }

    deinit { if ownsDescriptor { close(fd) } }

    var isTerminal: Bool { isatty(fd) == 1 }

    func write(_ bytes: [UInt8]) {
        lock.withLock { writable in
            guard writable else { return }
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        writable = false
                        return
                    }
                    offset += written
                }
            }
        }
    }

    func write(_ text: String) { write(Array(text.utf8)) }

    func writeLine(_ text: String) { write(Array((text + "\n").utf8)) }
}

/// A message for the user, ending corral with exit code 125.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
