import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A job's environment as `execve` takes it.
enum ProcessEnvironment {
    /// `environment` for the job `jobID` (with its `CORRAL_JOB_ID`), as an
    /// envp, and the PATH the job will have. This runs for every job, and
    /// thousands may be queued at once, so inherited entries are not copied
    /// per job: the envp points into a snapshot of `environ` shared by every
    /// job prepared while the environment stays the same.
    ///
    /// Besides `CORRAL_JOB_ID`, every job gets `CORRAL_JOB_IDS`: the ids of
    /// the jobs this process itself runs inside (a Corral inside a Corral
    /// job), then its own, comma-separated. An inner runner overwrites
    /// `CORRAL_JOB_ID` but keeps the list, so an outer runner's sweep still
    /// finds its job's processes. It comes from this process's environment,
    /// whatever the job's own environment says.
    static func block(for environment: Environment, jobID: JobID) -> (envp: CStringArray, path: String?) {
        let snapshot = EnvironmentSnapshot.current()
        var changes = environment.changes
        changes["CORRAL_JOB_ID"] = .some(jobID.rawValue)
        changes["CORRAL_JOB_IDS"] = .some(snapshot.enclosingJobIDs.map { $0 + "," + jobID.rawValue } ?? jobID.rawValue)
        let added = changes.compactMap { name, value in value.map { name + "=" + $0 } }
        if case .exactly(let variables) = environment.base {
            let kept = variables.filter { changes[$0.key] == nil }.map { $0.key + "=" + $0.value }
            return (CStringArray(kept + added), changes["PATH"] ?? variables["PATH"])
        }
        let replaced = changes.keys.map { Array($0.utf8) }
        var kept: [UnsafePointer<CChar>] = []
        kept.reserveCapacity(snapshot.entries.count)
        for entry in snapshot.entries where !replaced.contains(where: entry.hasKey) {
            kept.append(entry.pointer)
        }
        return (CStringArray(sharing: kept, of: snapshot, strings: added), changes["PATH"] ?? snapshot.path)
    }
}

/// An immutable copy of `environ`: one entry per variable (the first of
/// duplicate names wins, as in getenv; entries without `=` are dropped).
final class EnvironmentSnapshot: @unchecked Sendable {
    struct Entry {
        let pointer: UnsafePointer<CChar>
        let keyLength: Int

        func hasKey(_ key: [UInt8]) -> Bool {
            keyLength == key.count && UnsafeRawBufferPointer(start: pointer, count: keyLength).elementsEqual(key)
        }
    }

    let entries: [Entry]
    let path: String?
    /// The jobs this process runs inside: its `CORRAL_JOB_IDS`, plus its
    /// `CORRAL_JOB_ID` if a runner that predates the list set it.
    let enclosingJobIDs: String?
    /// Every entry of `environ` as it was, in order, for comparison.
    private let original: [UnsafePointer<CChar>]
    private let storage: UnsafeMutableRawPointer

    private init() {
        var lines: [UnsafePointer<CChar>] = []
        var cursor = environ
        while let line = cursor.pointee {
            lines.append(UnsafePointer(line))
            cursor += 1
        }
        let lengths = lines.map { strlen($0) + 1 }
        storage = .allocate(byteCount: max(lengths.reduce(0, +), 1), alignment: 1)
        var copies: [UnsafePointer<CChar>] = []
        var offset = 0
        for (line, length) in zip(lines, lengths) {
            let copy = (storage + offset).bindMemory(to: CChar.self, capacity: length)
            copy.update(from: line, count: length)
            copies.append(UnsafePointer(copy))
            offset += length
        }
        original = copies
        var entries: [Entry] = []
        var path: String?
        var jobID: String?
        var jobIDs: String?
        for copy in copies {
            guard let equals = strchr(copy, Int32(UInt8(ascii: "="))) else { continue }
            let entry = Entry(pointer: copy, keyLength: UnsafePointer(equals) - copy)
            let key = Array(UnsafeRawBufferPointer(start: copy, count: entry.keyLength))
            guard !entries.contains(where: { $0.hasKey(key) }) else { continue }
            entries.append(entry)
            if entry.hasKey(EnvironmentSnapshot.pathKey) { path = String(cString: equals + 1) }
            if entry.hasKey(EnvironmentSnapshot.jobIDKey) { jobID = String(cString: equals + 1) }
            if entry.hasKey(EnvironmentSnapshot.jobIDsKey) { jobIDs = String(cString: equals + 1) }
        }
        self.entries = entries
        self.path = path
        // The list, plus the innermost id if a runner without the list set it.
        var enclosing = (jobIDs ?? "").split(separator: ",").map(String.init)
        if let jobID, !jobID.isEmpty, !enclosing.contains(jobID) { enclosing.append(jobID) }
        enclosingJobIDs = enclosing.isEmpty ? nil : enclosing.joined(separator: ",")
    }

    deinit { storage.deallocate() }

    /// Whether `environ` still holds exactly these entries (compared byte
    /// for byte: `setenv` may have changed a value in place or the array).
    private func matchesEnviron() -> Bool {
        var cursor = environ
        for copy in original {
            guard let line = cursor.pointee, strcmp(line, copy) == 0 else { return false }
            cursor += 1
        }
        return cursor.pointee == nil
    }

    private static let pathKey = Array("PATH".utf8)
    private static let jobIDKey = Array("CORRAL_JOB_ID".utf8)
    private static let jobIDsKey = Array("CORRAL_JOB_IDS".utf8)
    private static let latest = Locked<EnvironmentSnapshot?>(nil)

    /// The snapshot of `environ` as it is now: the last one if nothing has
    /// changed since, else a new one.
    static func current() -> EnvironmentSnapshot {
        latest.withLock { latest in
            if let snapshot = latest, snapshot.matchesEnviron() { return snapshot }
            let snapshot = EnvironmentSnapshot()
            latest = snapshot
            return snapshot
        }
    }
}
