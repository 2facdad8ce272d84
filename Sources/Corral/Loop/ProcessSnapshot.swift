import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The machine's processes as the escapee sweep sees them: those outside
/// every live job's process group, with the `CORRAL_JOB_ID` they carry.
/// Taken at most once per loop iteration and shared by every sweep in it,
/// so a thousand jobs timing out together cost one scan of /proc, not a
/// thousand.
struct ProcessSnapshot {
    struct Candidate {
        let pid: pid_t
        let jobID: String
    }

    /// Candidates by the job id they carry.
    let byJob: [String: [Candidate]]

    /// Scans /proc. Live job leaders (`leaders`: not yet reaped, so the pid
    /// is still theirs; a session leader cannot leave its group) are skipped
    /// without reading anything; processes in `jobGroups` without reading
    /// their environment (they are their job's group members); zombies too.
    static func take(jobGroups: Set<pid_t>, leaders: Set<pid_t>,
                     buffer: UnsafeMutableRawBufferPointer) -> ProcessSnapshot {
        var byJob: [String: [Candidate]] = [:]
        let me = getpid()
        let text = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        ProcFiles.forEachProcessID { pid in
            guard pid != me, !leaders.contains(pid) else { return }
            var state: CChar = 0
            var group: pid_t = 0
            guard cc_proc_stat(pid, &state, &group) == 0, state != CChar(UInt8(ascii: "Z")),
                  !jobGroups.contains(group) else { return }
            var value: UnsafePointer<CChar>?
            let length = cc_proc_job_id(pid, text, buffer.count, &value)
            guard length > 0, let value else { return }
            let jobID = String(decoding: UnsafeRawBufferPointer(start: value, count: length), as: UTF8.self)
            byJob[jobID, default: []].append(Candidate(pid: pid, jobID: jobID))
        }
        return ProcessSnapshot(byJob: byJob)
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
