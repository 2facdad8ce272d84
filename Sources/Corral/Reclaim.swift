import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// Stops what jobs of a runner that died (a crashed host process) left
/// running, from what a journal recorded of them (`JobStart`): a host that
/// restarts calls this before it reports those jobs as lost.
///
/// Each job is found three ways, and each only if it really is that job:
/// its cgroup leaf (killed with `cgroup.kill`, then removed); its leader's
/// process group, when a live process has the recorded pid *and* start time
/// (a recycled pid is never signalled); and every process whose environment
/// carries the job's `CORRAL_JOB_ID` or the host's own marker variable (the
/// escapees of the process-group tier, and jobs the host had submitted but
/// not yet journaled as started).
public enum Reclaim {
    /// What a journal knows of a job that was queued or running.
    public struct Trace: Hashable, Sendable {
        /// The runner's id for the job, if it was recorded.
        public var id: JobID?
        /// An environment entry (`KEY=value`) the host gave the job.
        public var marker: String?
        public var pid: Int32?
        public var startTime: UInt64?
        public var cgroup: String?

        public init(id: JobID? = nil, marker: String? = nil, pid: Int32? = nil, startTime: UInt64? = nil,
                    cgroup: String? = nil) {
            self.id = id
            self.marker = marker
            self.pid = pid
            self.startTime = startTime
            self.cgroup = cgroup
        }
    }

    /// SIGKILLs every process of these jobs, waits (up to `limit`) for them
    /// to die, and removes their cgroup leaves.
    ///
    /// - Returns: for each trace, in order, the processes found alive and killed.
    public static func stop(_ traces: [Trace], waitingUpTo limit: Duration = .seconds(2)) -> [[ProcessSummary]] {
        var killed = [[ProcessSummary]](repeating: [], count: traces.count)
        var pending: [pid_t] = []
        func kill(_ pid: pid_t, of index: Int) {
            guard pid != getpid(), !killed[index].contains(where: { $0.pid == pid }), isAlive(pid) else { return }
            killed[index].append(ProcessSummary(pid: pid, command: ProcFiles.command(of: pid)))
            Glibc.kill(pid, SIGKILL)
            pending.append(pid)
        }

        var leaves: [String] = []
        for (index, trace) in traces.enumerated() {
            if let cgroup = trace.cgroup, !ProcFiles.entries(cgroup).isEmpty {
                for pid in CgroupLeaf.members(cgroup) { kill(pid, of: index) }
                leaves.append(cgroup)
            }
            if let pid = trace.pid, pid > 0, let recorded = trace.startTime,
               JobStart.startTime(of: pid) == recorded {
                Glibc.kill(-pid, SIGKILL)  // the group, while its leader pins it
                kill(pid, of: index)
            }
        }
        // The environment sweep: one pass over /proc for every job. A job id
        // counts as CORRAL_JOB_ID or in CORRAL_JOB_IDS (a nested Corral keeps it there).
        var byEntry: [[UInt8]: Int] = [:]
        var byID: [[UInt8]: Int] = [:]
        for (index, trace) in traces.enumerated() {
            if let id = trace.id { byID[Array(id.rawValue.utf8)] = index }
            if let marker = trace.marker { byEntry[Array(marker.utf8)] = index }
        }
        let idKey = Array("CORRAL_JOB_ID=".utf8), listKey = Array("CORRAL_JOB_IDS=".utf8)
        if !byEntry.isEmpty || !byID.isEmpty {
            for pid in ProcFiles.processIDs() where pid != getpid() {
                guard let environ = ProcFiles.readBytes("/proc/\(pid)/environ") else { continue }
                for entry in environ.split(separator: 0) {
                    if let index = byEntry[Array(entry)] { kill(pid, of: index) }
                    let ids = entry.starts(with: idKey) ? entry.dropFirst(idKey.count)
                        : entry.starts(with: listKey) ? entry.dropFirst(listKey.count) : nil
                    for id in ids?.split(separator: UInt8(ascii: ",")) ?? [] {
                        if let index = byID[Array(id)] { kill(pid, of: index) }
                    }
                }
            }
        }
        CgroupLeaf.killAndRemove(leaves, waitingUpTo: limit)
        let deadline = MonotonicInstant.now() + limit
        while pending.contains(where: isAlive), MonotonicInstant.now() < deadline { usleep(5_000) }
        return killed
    }

    /// Alive and not a zombie.
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard let state = ProcFiles.processInfo(of: pid)?.state else { return false }
        return state != CChar(UInt8(ascii: "Z")) && state != CChar(UInt8(ascii: "X"))
    }
}
