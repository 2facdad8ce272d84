import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The machine's processes as the escapee sweep sees them: those outside
/// every live job's process group, by each job id they carry
/// (`CORRAL_JOB_ID`, and every id in `CORRAL_JOB_IDS`, which a Corral
/// running inside a job keeps). Shared by every sweep of a loop iteration,
/// and later while no process has been created since, so a thousand jobs
/// timing out together cost one scan of /proc, not a thousand.
struct ProcessSnapshot {
    struct Candidate: Hashable {
        let pid: pid_t
        /// Its process group when scanned.
        let group: pid_t
    }

    /// Candidates by the job id they carry.
    let byJob: [String: [Candidate]]
    /// User processes (outside the skipped groups) whose environment read
    /// empty: one in the middle of an exec does, for a moment, so a sweep
    /// that sees a new one here is not conclusive.
    let unreadable: Set<pid_t>

    /// Scans /proc. Live job leaders (`leaders`: not yet reaped, so the pid
    /// is still theirs; a session leader cannot leave its group) are skipped
    /// without reading anything; processes in `jobGroups` without reading
    /// their environment (they are their job's group members); zombies too.
    static func take(jobGroups: Set<pid_t>, leaders: Set<pid_t>,
                     buffer: UnsafeMutableRawBufferPointer) -> ProcessSnapshot {
        var byJob: [String: [Candidate]] = [:]
        var unreadable = Set<pid_t>()
        let me = getpid()
        ProcFiles.forEachProcessID { pid in
            guard pid != me, !leaders.contains(pid) else { return }
            var state: CChar = 0
            var group: pid_t = 0
            var kernelThread = false
            guard cc_proc_stat(pid, &state, &group, &kernelThread) == 0, !kernelThread,
                  state != CChar(UInt8(ascii: "Z")), !jobGroups.contains(group) else { return }
            guard let ids = ProcFiles.jobIDs(of: pid, buffer: buffer) else {
                unreadable.insert(pid)
                return
            }
            for jobID in ids {
                byJob[jobID, default: []].append(Candidate(pid: pid, group: group))
            }
        }
        return ProcessSnapshot(byJob: byJob, unreadable: unreadable)
    }
}

extension ProcFiles {
    /// Every job id a process carries: its `CORRAL_JOB_ID` and each id of
    /// its `CORRAL_JOB_IDS`, without repeats; nil if its environment read
    /// empty (see `ProcessSnapshot.unreadable`). `buffer` is scratch space
    /// for its environment.
    static func jobIDs(of pid: pid_t, buffer: UnsafeMutableRawBufferPointer) -> [String]? {
        let text = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        var marks = cc_job_marks()
        let status = cc_proc_job_ids(pid, text, buffer.count, &marks)
        if status == 2 { return nil }
        guard status > 0 else { return [] }
        var ids: [String] = []
        if let list = marks.ids, marks.ids_length > 0 {
            let bytes = UnsafeRawBufferPointer(start: list, count: marks.ids_length)
            for id in bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                ids.append(String(decoding: id, as: UTF8.self))
            }
        }
        if let id = marks.id, marks.id_length > 0 {
            let value = String(decoding: UnsafeRawBufferPointer(start: id, count: marks.id_length), as: UTF8.self)
            if !ids.contains(value) { ids.append(value) }
        }
        return ids
    }

    /// Whether a process carries this job id (as `CORRAL_JOB_ID` or in
    /// `CORRAL_JOB_IDS`).
    static func carries(_ pid: pid_t, jobID: String, buffer: UnsafeMutableRawBufferPointer) -> Bool {
        jobIDs(of: pid, buffer: buffer)?.contains(jobID) ?? false
    }
}

/// Counts loop iterations (a `uv_prepare` handle runs once before each
/// poll), so a snapshot is known to belong to the current one.
final class IterationCounter: LoopObject {
    private let handle: UnsafeMutablePointer<uv_prepare_t>
    private(set) var iteration: UInt64 = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>) {
        handle = UVHandle.allocate(UV_PREPARE, as: uv_prepare_t.self)
        super.init()
        UVHandle.setOwner(handle, self)
        uv_prepare_init(loop, handle)
        uv_prepare_start(handle) { handle in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: IterationCounter.self).iteration &+= 1
        }
        uv_unref(UVHandle.base(handle))  // never keeps the loop alive by itself
    }

    func close() { UVHandle.close(handle) }
}
