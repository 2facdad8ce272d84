import CCorral
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
        /// Its parent when scanned.
        let parent: pid_t
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
    /// is still theirs; a session leader cannot leave its group), and those
    /// spawned since (`LeaderRegistry`), are skipped without reading
    /// anything; processes in `jobGroups` without reading their environment
    /// (they are their job's group members); zombies too.
    static func take(jobGroups: Set<pid_t>, leaders: Set<pid_t>,
                     buffer: UnsafeMutableRawBufferPointer) -> ProcessSnapshot {
        assertNotOnLoopThread()
        var byJob: [String: [Candidate]] = [:]
        var unreadable = Set<pid_t>()
        let me = getpid()
        let spawned = LeaderRegistry.leadersAndSpawning()
        ProcFiles.forEachProcessID { pid in
            guard pid != me, !leaders.contains(pid) else { return }
            // A job leader spawned since the loop asked, perhaps in its
            // exec: a new job, never another's escapee. Not read: an exec
            // holds the locks a read of its /proc files waits for, and
            // under CPU saturation the child waits tens of milliseconds for
            // a CPU to finish it (`corral batch` W7: scans of 50-65 ms, of
            // which 1-2 ms CPU). Still our unreaped child, so the pid is
            // still that leader's.
            if spawned.contains(pid), cc_is_unreaped_child(pid) == 1 { return }
            guard let info = ProcFiles.processInfo(of: pid), !info.kernel_thread,
                  info.state != CChar(UInt8(ascii: "Z")), !jobGroups.contains(info.group) else { return }
            guard let ids = ProcFiles.jobIDs(of: pid, buffer: buffer) else {
                unreadable.insert(pid)
                return
            }
            for jobID in ids {
                byJob[jobID, default: []].append(Candidate(pid: pid, parent: info.parent, group: info.group))
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

/// The inspector's side of the escapee sweep: its scratch buffer and the
/// last scan, which serves later batches for a short while if no process
/// at all has been created since (the kernel's last allocated pid is
/// unchanged) and the same groups are skipped: an escapee is a new
/// process, forked by a job, so a burst of deadlines with nothing being
/// spawned costs a few scans instead of one per batch. Inspector thread only.
final class SweepScanner: @unchecked Sendable {
    private let buffer: UnsafeMutableRawBufferPointer = .allocate(byteCount: 256 * 1024, alignment: 16)
    private var last: (lastPID: pid_t?, groups: Set<pid_t>, taken: MonotonicInstant, value: ProcessSnapshot)?
    private let reuse: Duration

    init(reuse: Duration) { self.reuse = reuse }

    deinit { buffer.deallocate() }

    /// A scan skipping the groups of `leaders` (the loop's unreaped job
    /// leaders when it asked). Each is checked first to still be an
    /// unreaped child of this process: one reaped since the loop asked, its
    /// pid taken by a new process, is not skipped (a new job leader the loop
    /// just spawned is our child too, and skipping its fresh group hides
    /// nothing of an older job). `rescan`: no reuse (a process was caught mid-exec).
    func snapshot(leaders: Set<pid_t>, rescan: Bool) -> ProcessSnapshot {
        assertNotOnLoopThread()
        // One waitid each, no file opened: with 1,000 leaders a check by
        // /proc/<pid>/stat was most of a batch's time, and batches are
        // spaced by their cost (`EscapeeSweeper.delay`).
        let groups = leaders.filter { cc_is_unreaped_child($0) == 1 }
        let lastPID = ProcFiles.lastAllocatedPID()
        if !rescan, let last, let lastPID, last.lastPID == lastPID, last.groups == groups,
           MonotonicInstant.now() - last.taken < reuse {
            return last.value
        }
        let taken = ProcessSnapshot.take(jobGroups: groups, leaders: groups, buffer: buffer)
        last = (lastPID, groups, .now(), taken)
        return taken
    }

    /// Whether a process carries this job id (read again once it is pinned by a pidfd).
    func carries(_ pid: pid_t, jobID: String) -> Bool {
        ProcFiles.carries(pid, jobID: jobID, buffer: buffer)
    }
}
