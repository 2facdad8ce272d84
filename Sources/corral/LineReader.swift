#if canImport(Glibc)
import Glibc
#endif

/// Reads a file (or standard input) line by line, holding one line at a time.
final class LineReader {
    private let file: UnsafeMutablePointer<FILE>
    private let ownsFile: Bool
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    /// `path` nil or "-" reads standard input.
    init(path: String?) throws(CLIError) {
        if let path, path != "-" {
            guard let file = fopen(path, "re") else {
                throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            self.file = file
            ownsFile = true
        } else {
            file = fdopen(dup(STDIN_FILENO), "r")!
            ownsFile = true
        }
    }

    deinit {
        free(buffer)
        if ownsFile { fclose(file) }
    }

    /// The next line without its newline, or nil at end of input.
    func next() -> String? {
        let count = getline(&buffer, &capacity, file)
        guard count >= 0, let buffer else { return nil }
        var length = count
        if length > 0, buffer[length - 1] == 0x0A { length -= 1 }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Counts the lines of a regular file (for progress), nil for anything else.
    static func countLines(path: String?) -> Int? {
        guard let path, path != "-", let reader = try? LineReader(path: path) else { return nil }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var count = 0
        while let line = reader.next() { if !line.allSatisfy(\.isWhitespace) { count += 1 } }
        return count
    }
}
