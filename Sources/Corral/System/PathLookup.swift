#if canImport(Glibc)
import Glibc
#endif

/// Finds an executable the way `execvp` does, before the spawn, so that a
/// miss is reported as a clear `failedToStart` rather than a child exit.
enum PathLookup {
    static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

    /// The path to exec for `program`, given the job's `PATH`.
    static func resolve(_ program: String, searchPath: String?) -> Result<String, SpawnFailure> {
        if program.contains("/") { return .success(program) }
        var sawNoPermission = false
        for directory in (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: false) {
            let base = directory.isEmpty ? "." : String(directory)
            let candidate = base.hasSuffix("/") ? base + program : base + "/" + program
            var info = stat()
            guard stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(candidate, X_OK) == 0 { return .success(candidate) }
            sawNoPermission = true
        }
        if sawNoPermission {
            return .failure(SpawnFailure(errno: EACCES, stage: .lookup,
                                         message: "\(program): found in PATH but not executable"))
        }
        return .failure(SpawnFailure(errno: ENOENT, stage: .lookup,
                                     message: "\(program): command not found in PATH"))
    }
}
