/// Everything known about a finished job. Every submitted job gets exactly
/// one result, whatever happened to it.
public struct JobResult: Hashable, Sendable {
    /// The runner-assigned id (`CORRAL_JOB_ID`).
    public var id: JobID
    /// `JobSpec.name`.
    public var name: String?
    /// How the job ended.
    public var outcome: Outcome
    /// How the leader itself terminated, also when the job timed out or was
    /// cancelled; nil when it never started or could not be reaped in time.
    public var leaderStatus: TerminationStatus?
    /// Standard output, or both streams with `OutputMode.combined`.
    public var stdout: CapturedOutput
    /// Standard error (empty with `.combined` and `.discarded`).
    public var stderr: CapturedOutput
    /// True when an output pipe was still held open (by a descendant) after
    /// the drain timeout, or at cancellation, and Corral closed it.
    public var pipesForceClosed: Bool
    /// True when members of the process group were still alive after the
    /// leader exited and Corral killed them.
    public var lingeringKilled: Bool
    /// False when the leader had not exited even after SIGKILL by the time
    /// the result was due (a process stuck in the kernel); Corral keeps
    /// waiting for it in the background and reaps it when it exits.
    public var leaderReaped: Bool
    /// The leader's pid, which is also the process group and session id.
    public var pid: Int32?
    /// How the job's processes were held together.
    public var containment: Containment
    /// Processes of the job other than the leader that Corral killed: the
    /// cgroup's members at `cgroup.kill`, or escapees found by the sweep.
    /// (Plain process-group members are killed by group, unnamed.)
    public var killed: [ProcessSummary]
    /// Escapees (processes that left the group, found by `CORRAL_JOB_ID`)
    /// that the process-group tier's sweep signalled.
    public var escapeesKilled: Int
    /// Who still held an output pipe when it was force-closed.
    public var pipeHolders: [PipeHolder]
    /// Processes deliberately left running (`LingeringPolicy.leaveRunning`),
    /// in pid order; at most 1,000 are named (`leftRunningCount` counts all).
    public var leftRunning: [ProcessSummary]
    /// How many processes were left running, all of them, as the result
    /// was built (more than `leftRunning` names when the list was cut).
    public var leftRunningCount: Int = 0
    /// CPU time of the whole job tree (cgroup tier, from `cpu.stat`).
    public var cpuTime: Duration?
    /// When things happened.
    public var timing: JobTiming
}

/// The moments of a job's life, on the monotonic clock, plus its start on
/// the wall clock.
public struct JobTiming: Hashable, Sendable {
    public var submitted: MonotonicInstant
    /// When the leader was spawned; nil if it never was. For a spawn killed
    /// before its exec (stuck, or held up past the job's timeout on a loaded
    /// host), when its clone began: its deadline counted from then.
    public var spawned: MonotonicInstant?
    public var leaderExited: MonotonicInstant?
    public var delivered: MonotonicInstant
    /// Wall-clock time of the spawn (or of delivery if it never spawned).
    public var startedAt: WallClockTime

    /// From spawn (or submission, if it never spawned) to delivery.
    public var duration: Duration { delivered - (spawned ?? submitted) }
}
