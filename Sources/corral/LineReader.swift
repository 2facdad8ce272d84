#if canImport(Glibc)
import Glibc
#endif

/// Reads a file (or standard input) line by line, holding one line at a time.
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0
    /// What ended the input early, if a read failed (not end of file).
    private(set) var readError: CLIError?
    private let name: String
    /// A regular file ends soon; a pipe or terminal may never.
    let isRegularFile: Bool

    /// `path` nil or "-" reads standard input.
    init(path: String?) throws(CLIError) {
        let fd: Int32
        if let path, path != "-" {
            name = path
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
        } else {
            name = "standard input"
            if ProcessSetup.closedAtStart.contains(STDIN_FILENO) { throw CLIError("cannot read standard input: it is closed") }
            fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
            guard fd >= 0 else { throw CLIError("cannot read standard input: \(String(cString: strerror(errno)))") }
        }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw CLIError("cannot read \(name): it is a directory")
        }
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
        guard let file = fdopen(fd, "r") else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw CLIError("cannot read \(name): \(message)")
        }
        self.file = file
    }

    deinit {
        free(buffer)
        fclose(file)
    }

    /// The next line's bytes without the newline, or nil at end of input or
    /// on a read error (then `readError` says what happened).
    func next() -> [UInt8]? {
        clearerr(file)
        errno = 0
        let count = getline(&buffer, &capacity, file)
        guard count >= 0, let buffer else {
            // Not the end: a read error, or a line too long to hold
            // (ENOMEM leaves neither the error nor the end-of-file flag set).
            if ferror(file) != 0 || (feof(file) == 0 && errno != 0) {
                let reason = errno == ENOMEM ? "a line is too long to hold in memory" : String(cString: strerror(errno))
                readError = CLIError("reading \(name) failed: \(reason)")
            }
            return nil
        }
        var length = count
        if length > 0, buffer[length - 1] == 0x0A { length -= 1 }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// Whether a line holds nothing but blanks (space, tab, CR).
    static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    /// Counts the lines of a regular file (for progress), nil for anything else.
    static func countLines(path: String?) -> Int? {
        guard let path, path != "-", let reader = try? LineReader(path: path) else { return nil }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var count = 0
        while let line = reader.next() { if !isBlank(line) { count += 1 } }
        return count
    }
}
