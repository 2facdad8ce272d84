#if canImport(Glibc)
import Glibc
#endif

/// Checks on the files `corral batch` writes, made before any is opened.
enum OutputPaths {
    /// Refuses an output that is the input file (same device and inode,
    /// whatever the path says) or another output: opening it for writing
    /// would truncate what corral is about to read or write.
    static func refuseOverwriting(input: String?, outputs: [(flag: String, path: String?)]) throws(CLIError) {
        var seen: [(flag: String, device: UInt, inode: UInt)] = []
        var info = stat()
        let inputFound = if let input, input != "-" { stat(input, &info) == 0 } else { fstat(STDIN_FILENO, &info) == 0 }
        if inputFound, (info.st_mode & S_IFMT) == S_IFREG {
            seen.append(("the input", UInt(info.st_dev), UInt(info.st_ino)))
        }
        var named: [(flag: String, path: String)] = []
        for case let (flag, path?) in outputs {
            // Two outputs that do not exist yet are told apart by where they would be.
            let resolved = resolvedPath(path)
            if let same = named.first(where: { $0.path == resolved }) {
                throw CLIError("\(flag) \(path) is the same file as \(same.flag): choose another file")
            }
            named.append((flag, resolved))
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if let same = seen.first(where: { $0.device == UInt(info.st_dev) && $0.inode == UInt(info.st_ino) }) {
                throw CLIError("\(flag) \(path) is the same file as \(same.flag): it would be truncated; choose another file")
            }
            seen.append((flag, UInt(info.st_dev), UInt(info.st_ino)))
        }
    }

    /// The path with its directory resolved (links, `.`, `..`); the path as
    /// given when the directory cannot be resolved.
    private static func resolvedPath(_ path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let real = realpath(directory, nil) else { return path }
        defer { free(real) }
        return String(cString: real) + "/" + name
    }
}
