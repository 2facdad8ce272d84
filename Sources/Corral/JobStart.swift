import CCorral
/// A job's leader has just been spawned: what a journal records so that the
/// job's processes can be found again after the host process dies (see
/// `Reclaim`).
public struct JobStart: Hashable, Sendable {
    public let id: JobID
    /// The leader's pid; it leads its own session and process group, so
    /// this is also the group's id.
    public let pid: Int32
    /// The leader's start time in clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`): with the pid, it names the process unambiguously
    /// even after pids wrap around.
    public let startTime: UInt64?
    /// The job's cgroup leaf, in the cgroup tier.
    public let cgroup: String?
    public let startedAt: WallClockTime

    public init(id: JobID, pid: Int32, startTime: UInt64?, cgroup: String?, startedAt: WallClockTime) {
        self.id = id
        self.pid = pid
        self.startTime = startTime
        self.cgroup = cgroup
        self.startedAt = startedAt
    }

    /// The start time of a live process, as `startTime` records it.
    public static func startTime(of pid: Int32) -> UInt64? {
        ProcFiles.processInfo(of: pid).map { UInt64($0.start_time) }
    }
}
