import CCorral
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs jobs on one libuv event loop on one thread of its own, however many
/// jobs there are: each job in its own session and process group, its pipes
/// read by the loop, its deadline a loop timer. On timeout or cancellation
/// the whole group gets the stop signal, then SIGKILL, and pipes that a
/// descendant still holds are closed, so no result ever waits on one.
///
/// ```swift
/// let runner = try Runner()
/// var spec = JobSpec(.shell("./build.sh"))
/// spec.timeout = .seconds(60)
/// let result = try await runner.run(spec)
/// await runner.shutdown()
/// ```
///
/// - Important: Call `shutdown()` when done: it stops what still runs,
///   delivers every result and closes every descriptor and handle.
///
/// - Important: Each runner forks a small watchdog process at init (a child
///   of this process named `corral-watchdog`, in a session of its own, with
///   exit signal 0 so `waitpid(-1)` never sees it). If this process dies
///   without `shutdown()` — SIGKILL, the OOM killer — it kills every process
///   of the runner's unfinished jobs within milliseconds. It keeps the pages
///   this process had at init (copy on write): create runners early, not
///   after building a large heap.
public final class Runner: Sendable {
    private let eventLoop: EventLoop
    private let idPrefix: String
    private let sequence = Atomic<UInt64>(0)
    /// Kills what the jobs leave if this process dies without `shutdown()`.
    let watchdog: Watchdog
    /// What the runner settled on at start.
    public let limits: Limits
    /// The containment tier in use, and why the cgroup tier is not, if so.
    public let containment: ContainmentReport

    /// The limits a runner works within.
    public struct Limits: Sendable, Hashable {
        /// Jobs started at most at once; the rest wait in FIFO order.
        public let maxJobsInFlight: Int
        /// Descriptors the jobs in flight may hold in all (a job holds 1 to 4).
        public let descriptorBudget: Int
        /// The soft open-files limit in force (raised to the hard limit at start).
        public let openFileLimit: UInt64
    }

    /// Starts a runner and its loop thread.
    ///
    /// - Throws: `CorralError` with `.unsupportedSystem` on a kernel without
    ///   pidfds (Linux < 5.4), `.runnerFailure` if the loop cannot start.
    public init(configuration: Configuration = Configuration()) throws(CorralError) {
        try Runner.checkKernel()
        let original = Syscalls.openFileLimits().soft
        let soft = configuration.raiseOpenFileLimit ? Syscalls.raiseOpenFileLimit() : original
        // Keep a reserve for the host process and for the transient child
        // ends of a spawn; the rest is the jobs' budget.
        let inUse = Syscalls.openDescriptorCount()
        let reserve = max(64, Int(soft) / 20)
        let budget = max(4, Int(soft) - inUse - reserve)
        let maxInFlight = configuration.maxJobsInFlight.map { max(1, $0) } ?? max(1, budget / 3)
        limits = Limits(maxJobsInFlight: maxInFlight, descriptorBudget: budget, openFileLimit: soft)
        let (tree, report) = CgroupTree.setUp(configuration.containment)
        containment = report
        idPrefix = "c" + String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
        // Started before the loop thread and any job, so it holds no job's
        // descriptor and copies as little of this process as can be.
        switch Watchdog.start(cgroupDirectory: tree?.directory, jobIDPrefix: idPrefix + "-", capacity: maxInFlight) {
        case .success(let started): watchdog = started
        case .failure(let error):
            tree?.removeDirectory()
            throw CorralError(.runnerFailure, "cannot start the watchdog process: \(error)", errno: error.code)
        }
        do throws(CorralError) {
            eventLoop = try EventLoop(
                configuration: JobScheduler.Configuration(
                    maxJobsInFlight: maxInFlight, descriptorBudget: budget,
                    childOpenFileLimit: soft != original ? original : nil,
                    shutdownReapTimeout: configuration.shutdownReapTimeout, cgroupTree: tree,
                    sweepSnapshotReuse: configuration.sweepSnapshotReuse, watchdog: watchdog),
                reapOrphans: configuration.reapOrphans)
            try eventLoop.start()
        } catch {
            watchdog.stop()
            throw error
        }
    }

    deinit {
        eventLoop.shutdown {}
    }

    /// Runs a job and returns its result once the job is over: its leader
    /// exited and its output drained (or the drain timeout passed), or its
    /// deadline passed and the stop sequence ran. Cancelling the calling task
    /// cancels the job; the result then says `.cancelled`.
    ///
    /// - Parameters:
    ///   - spec: the job.
    ///   - onOutput: called with each chunk of output as it arrives, on the
    ///     runner's delivery thread (never the loop thread), in order. A slow
    ///     handler delays the callbacks queued behind it, never a deadline;
    ///     once 256 KiB of a job's output waits for it, that job's pipes are
    ///     not read until it catches up (the job's own writes block).
    /// - Returns: the result; a failed or killed job is a result, not an error.
    /// - Throws: `CorralError` `.invalidSpec` for a spec that cannot run as
    ///   written, `.shutDown` after `shutdown()`.
    public func run(_ spec: JobSpec, onOutput: (@Sendable (OutputChunk) -> Void)? = nil) async throws -> JobResult {
        try spec.validate()
        let id = nextID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JobResult, Error>) in
                let submission = prepare(spec, id: id, onOutput: onOutput, onStart: nil,
                                         onCompletion: { continuation.resume(returning: $0) })
                guard eventLoop.send(.submit(submission)) else {
                    continuation.resume(throwing: CorralError(.shutDown, "the runner has been shut down"))
                    return
                }
                if Task.isCancelled { eventLoop.send(.cancel(id)) }
            }
        } onCancel: {
            eventLoop.send(.cancel(id))
        }
    }

    /// Starts a job without awaiting it, for harnesses that run thousands of
    /// jobs without a task each.
    ///
    /// - Parameters:
    ///   - onOutput: called with each chunk of output, on the delivery thread
    ///     (see `run`), with the same flow control.
    ///   - onStart: called on the delivery thread once the leader is spawned
    ///     (never for a job that fails to start or is cancelled while queued),
    ///     with what a journal needs to find its processes again.
    ///   - onCompletion: called exactly once, on the delivery thread, with the
    ///     result, after every `onOutput` call of the job.
    ///
    /// - Important: All of a runner's callbacks run one at a time on its one
    ///   delivery thread, in the order the loop handed them over. They may
    ///   block (no deadline waits for them), but a callback must never wait
    ///   for `shutdown()`: shutdown returns only after every callback ran.
    /// - Returns: a handle to cancel the job.
    /// - Throws: `CorralError` `.invalidSpec` or `.shutDown`; then
    ///   `onCompletion` is never called.
    @discardableResult
    public func submit(_ spec: JobSpec, onOutput: (@Sendable (OutputChunk) -> Void)? = nil,
                       onStart: (@Sendable (JobStart) -> Void)? = nil,
                       onCompletion: @escaping @Sendable (JobResult) -> Void) throws -> JobHandle {
        try spec.validate()
        let submission = prepare(spec, id: nextID(), onOutput: onOutput, onStart: onStart, onCompletion: onCompletion)
        guard eventLoop.send(.submit(submission)) else {
            throw CorralError(.shutDown, "the runner has been shut down")
        }
        return JobHandle(id: submission.id, eventLoop: eventLoop)
    }

    /// Stops taking jobs, cancels the queued ones, stops the running ones
    /// (stop signal, grace, SIGKILL), delivers every result, closes every
    /// handle and descriptor, and ends the loop thread. Safe to call more
    /// than once; every call returns once all that is done and every
    /// callback has run.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            eventLoop.shutdown { continuation.resume() }
        }
    }

    /// For tests and operators: what the loop saw when it closed.
    var diagnostics: EventLoop.Diagnostics { eventLoop.diagnostics }

    private func nextID() -> JobID {
        JobID(rawValue: "\(idPrefix)-\(sequence.add(1, ordering: .relaxed).newValue)")
    }

    /// The submission the loop gets. Its callbacks only queue the host's
    /// own on the delivery thread, so no host code runs on the loop; the
    /// output callback also reports what it consumed, for flow control.
    private func prepare(_ spec: JobSpec, id: JobID, onOutput: (@Sendable (OutputChunk) -> Void)?,
                         onStart: (@Sendable (JobStart) -> Void)?,
                         onCompletion: @escaping @Sendable (JobResult) -> Void) -> Submission {
        let delivery = eventLoop.delivery
        let eventLoop = self.eventLoop
        let output = onOutput.map { consume in
            { @Sendable (chunk: OutputChunk) in
                delivery.run {
                    consume(chunk)
                    eventLoop.outputConsumed(chunk.jobID, bytes: chunk.bytes.count)
                }
            }
        }
        let start = onStart.map { started in { @Sendable (start: JobStart) in delivery.run { started(start) } } }
        return Submission(id: id, spec: spec, plan: LaunchPlan.prepare(spec, id: id), submitted: .now(),
                          onOutput: output, onStart: start,
                          onCompletion: { pending in delivery.run { onCompletion(pending.finished()) } })
    }

    private static func checkKernel() throws(CorralError) {
        let fd = cc_pidfd_open(getpid())
        if fd >= 0 {
            Syscalls.close(fd)
            return
        }
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        throw CorralError(.unsupportedSystem,
                          "Corral needs Linux 5.4 or newer (pidfd_open failed: \(Errno(code: -fd))); this kernel is \(release)",
                          errno: -fd)
    }
}

extension Runner {
    /// How a runner is set up.
    public struct Configuration: Sendable {
        /// At most this many jobs at once; by default as many as the
        /// descriptor budget allows (the open-files limit less a reserve).
        public var maxJobsInFlight: Int?
        /// Raise the soft open-files limit to the hard limit at start (jobs
        /// get the original soft limit back). On by default.
        public var raiseOpenFileLimit = true
        /// Become a child subreaper and reap the orphaned descendants of jobs,
        /// so killed grandchildren do not stay zombies where pid 1 does not
        /// reap them (containers).
        ///
        /// - Important: This reaps every child of this process that is not a
        ///   Corral job leader. Turn it on only in a process whose other
        ///   children nobody waits for (Corral's own CLI and agent do).
        public var reapOrphans = false
        /// How long `shutdown()` waits, once every result is delivered, for
        /// leaders that have not died even after SIGKILL (a process stuck in
        /// the kernel) before it stops watching them.
        public var shutdownReapTimeout: Duration = .seconds(5)
        /// How jobs are contained: a cgroup v2 leaf each when available
        /// (`.automatic`), or process groups and the escapee sweep.
        public var containment: ContainmentSetting = .automatic
        /// How long one /proc scan may serve later escapee sweeps while no
        /// process has been created since (tests set it long, to show that
        /// a new process makes the next sweep scan again).
        var sweepSnapshotReuse: Duration = .milliseconds(10)

        public init() {}
    }
}

/// A submitted job, to cancel it.
public struct JobHandle: Sendable, Hashable {
    public let id: JobID
    private let eventLoop: EventLoop

    init(id: JobID, eventLoop: EventLoop) {
        self.id = id
        self.eventLoop = eventLoop
    }

    /// Cancels the job: a queued job is dropped, a running one gets the stop
    /// sequence. Its result (`.cancelled`, or the real outcome if it had
    /// already finished) still arrives through `onCompletion`.
    public func cancel() {
        eventLoop.send(.cancel(id))
    }

    public static func == (lhs: JobHandle, rhs: JobHandle) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
