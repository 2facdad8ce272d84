import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A leaf the cgroup thread made for a queued job (or why it could not).
struct MadeLeaf: Sendable {
    let id: JobID
    let leaf: Result<String, Errno>
}

/// Decides what runs: a FIFO queue of submitted jobs, started while both the
/// in-flight limit and the descriptor budget allow. Loop thread only.
final class JobScheduler: LoopObject {
    struct Configuration: Sendable {
        /// At most this many jobs in flight.
        var maxJobsInFlight: Int
        /// Descriptors the jobs in flight may hold in all.
        var descriptorBudget: Int
        /// The soft open-files limit to give back to children, if raised.
        var childOpenFileLimit: UInt64?
        /// How long shutdown waits for leaders that have not died even after
        /// SIGKILL, once every result is delivered.
        var shutdownReapTimeout: Duration
        /// The cgroup tier's directory, or nil for the process-group tier.
        var cgroupTree: CgroupTree?
        /// How long a /proc scan serves later sweep batches while no process
        /// has been created since.
        var sweepSnapshotReuse: Duration = .milliseconds(10)
        /// Kills what the jobs leave if this process dies without shutting
        /// the runner down; told of each job as it starts and ends.
        var watchdog: Watchdog?
    }

    var tier: Containment { configuration.cgroupTree == nil ? .processGroup : .cgroup }

    private unowned let eventLoop: EventLoop
    let configuration: Configuration
    var loop: UnsafeMutablePointer<uv_loop_t> { eventLoop.loop }
    /// Shared by every output pipe: libuv fills it, the read callback copies
    /// out of it before the next read.
    let readBuffer: UnsafeMutableRawBufferPointer
    let devNullRead: Int32
    let devNullWrite: Int32

    /// The nice value children take before exec (the host's), when the loop
    /// thread runs at a raised priority; nil when it does not. Set once, as
    /// the loop thread starts.
    var childNice: Int32?
    /// Whether a stopped job's leader is hurried to its death
    /// (`LoopJob.hurryDeath`): when the loop thread could enter the
    /// real-time class, which the same privilege allows. Set once, as the
    /// loop thread starts.
    var hurriesDyingJobs = false

    private var queue: [Submission?] = []
    private var queueHead = 0
    private var queuedIndex: [JobID: Int] = [:]
    private var jobs: [JobID: LoopJob] = [:]
    private var descriptorsInUse = 0
    private var shuttingDown = false
    private var closedOwnHandles = false
    /// Started at shutdown once only unreaped leaders remain.
    private var abandonTimer: UnsafeMutablePointer<uv_timer_t>?
    private(set) var abandonedLeaders = 0

    init(eventLoop: EventLoop, configuration: Configuration) throws(CorralError) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        guard case .success(let read) = Syscalls.open("/dev/null", O_RDONLY),
              case .success(let write) = Syscalls.open("/dev/null", O_WRONLY) else {
            throw CorralError(.runnerFailure, "cannot open /dev/null: \(Errno.current)")
        }
        devNullRead = read
        devNullWrite = write
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
        scanner = SweepScanner(reuse: configuration.sweepSnapshotReuse)
        super.init()
    }

    deinit {
        Syscalls.close(devNullRead)
        Syscalls.close(devNullWrite)
        readBuffer.deallocate()
    }

    var jobsInFlight: Int { jobs.count }

    private var escapeeSweeper: EscapeeSweeper?
    /// The inspector's side of the sweep (its scratch space and last scan).
    let scanner: SweepScanner
    /// Inspections asked for and not yet answered: shutdown waits for them.
    private var inspectionsInFlight = 0
    /// Shutdown stopped waiting for the inspector (stuck in the kernel, say
    /// reading a process in D state): its late answers are dropped.
    private var inspectionsAbandoned = false
    /// Jobs in the table whose result has not gone out yet (O(1) shutdown bookkeeping).
    private var undelivered = 0

    /// Repeats sweeps until they find nothing new (created on first use).
    var sweeper: EscapeeSweeper {
        if let escapeeSweeper { return escapeeSweeper }
        let created = EscapeeSweeper(scheduler: self)
        escapeeSweeper = created
        return created
    }

    private var stuckSpawnWatch: StuckSpawns?

    /// Kills children stuck before their exec (created on first use).
    var stuckSpawns: StuckSpawns {
        if let stuckSpawnWatch { return stuckSpawnWatch }
        let created = StuckSpawns(scheduler: self)
        stuckSpawnWatch = created
        return created
    }

    /// A job in flight (started, not yet finished), by id.
    func job(_ id: JobID) -> LoopJob? { jobs[id] }

    /// The leaders not yet reaped: their groups are skipped by a scan (the
    /// leader pins the group id, and its members get the group's signals).
    func unreapedLeaders() -> Set<pid_t> {
        var leaders = Set<pid_t>(minimumCapacity: jobs.count)
        for job in jobs.values where !job.leaderReaped && !job.isSpawning { leaders.insert(job.pid) }
        return leaders
    }

    /// Runs `work` on the inspector thread and `then` on the loop with its
    /// answer (`EventLoop.inspector`, a `SerialWorker`).
    func inspect<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                   then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        inspectionsInFlight += 1
        eventLoop.inspect(work, then: counted(then))
    }

    /// Runs `work` on the cgroup thread (leaves made and removed) and
    /// `then` on the loop with its answer, counted like an inspection.
    func tidy<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        inspectionsInFlight += 1
        eventLoop.tidy(work, then: counted(then))
    }

    private func counted<Answer: Sendable>(_ then: @escaping @Sendable (JobScheduler, Answer) -> Void)
        -> @Sendable (JobScheduler, Answer) -> Void {
        return { scheduler, answer in
            // Given up on at shutdown (`abandonStuckWork`): not counted any more.
            guard !scheduler.inspectionsAbandoned else { return }
            scheduler.inspectionsInFlight -= 1
            then(scheduler, answer)
            scheduler.finishShutdownIfIdle()
        }
    }

    /// Runs a job's spawn on the spawn thread and `then` on the loop with
    /// its answer. Not counted as an inspection: the job is in the table
    /// until it answers, and shutdown waits for the table to empty.
    func spawn<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                 then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        eventLoop.spawn(work, then: then)
    }

    /// Finish orders waiting for the inspector, and whether a batch is out:
    /// every order that arrives while one is out goes in the next, so a
    /// burst of force-closed jobs costs one walk of the host's descriptors
    /// per batch, and the inspector's queue holds at most one batch.
    private var finishOrders: [FinishOrder] = []
    private var finishing = false

    /// Asks the inspector what a job's result still needs (`LoopJob.deliver`).
    func finish(_ order: FinishOrder) {
        finishOrders.append(order)
        sendFinishOrders()
    }

    private func sendFinishOrders() {
        guard !finishing, !finishOrders.isEmpty else { return }
        finishing = true
        let batch = finishOrders
        finishOrders = []
        let scanner = scanner
        inspect({ FinishOrder.run(batch, scanner: scanner) }, then: { scheduler, answers in
            scheduler.finishing = false
            for answer in answers {
                guard let job = scheduler.job(answer.id), !job.resultHandedOver else {
                    // Late (the result went out without it): a holder it
                    // pinned to be killed is still killed, not let go.
                    for holder in answer.holders where holder.pidfd >= 0 {
                        _ = cc_pidfd_send_signal(holder.pidfd, SIGKILL)
                        Syscalls.close(holder.pidfd)
                    }
                    continue
                }
                job.inspected(answer)
            }
            // Emptied leaves go after the answers: an `rmdir` in cgroupfs
            // can wait for the kernel (RCU) and no result waits for it.
            for order in batch where order.removeLeaf {
                if let leaf = order.leaf { scheduler.removeCgroup(leaf) }
            }
            scheduler.sendFinishOrders()
        })
    }

    /// Removes a cgroup (depth first) on the cgroup thread; what cannot be
    /// removed yet is left to the runner's directory removal at shutdown.
    func removeCgroup(_ path: String) {
        eventLoop.cgroups.run { CgroupLeaf.removeTree(path) }
    }

    func submit(_ submission: Submission) {
        assertOnLoopThread()
        if shuttingDown {
            deliver(cancelledBeforeStart: submission)
            return
        }
        queuedIndex[submission.id] = queue.count
        queue.append(submission)
        pump()
    }

    func cancel(_ id: JobID) {
        assertOnLoopThread()
        if let index = queuedIndex.removeValue(forKey: id), let submission = queue[index] {
            queue[index] = nil
            dropReadyLeaf(id)
            deliver(cancelledBeforeStart: submission)
            return
        }
        jobs[id]?.cancel()
    }

    func beginShutdown() {
        assertOnLoopThread()
        shuttingDown = true
        while let submission = dequeue() { deliver(cancelledBeforeStart: submission) }
        for id in Array(readyLeaves.keys) { dropReadyLeaf(id) }
        for job in jobs.values { job.cancel() }
        finishShutdownIfIdle()
    }

    /// Spawning done in one loop iteration at most; the rest waits for the
    /// next, so timers and reads run between slices (5,000 admitted jobs
    /// were once spawned in one callback, 0.5–1.8 s without a timer).
    static let spawnSlice = Duration.milliseconds(4)
    private var slice: (loopTime: UInt64, started: MonotonicInstant)?
    /// Active while queued jobs wait for the next slice: an idle handle
    /// runs once per iteration and keeps poll from blocking. (A zero timer
    /// re-armed from its own callback would run again in the same pass of
    /// libuv 1.44's timer loop, before any I/O.)
    private var pumpIdle: UnsafeMutablePointer<uv_idle_t>?

    /// Whether this iteration's spawn slice is used up (then the next
    /// iteration pumps again).
    private func sliceUsedUp() -> Bool {
        let loopTime = uv_now(loop)  // libuv's time, updated once per iteration
        if slice?.loopTime != loopTime { slice = (loopTime, .now()) }
        guard MonotonicInstant.now() - slice!.started >= JobScheduler.spawnSlice else { return false }
        if pumpIdle == nil {
            let idle = UVHandle.allocate(UV_IDLE, as: uv_idle_t.self, owner: self)
            uv_idle_init(loop, idle)
            pumpIdle = idle
        }
        if let pumpIdle, uv_is_active(UVHandle.base(pumpIdle)) == 0 {
            uv_idle_start(pumpIdle) { handle in
                uv_idle_stop(handle)
                unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: JobScheduler.self).pump()
            }
        }
        return true
    }

    /// A spawn failed for want of descriptors or processes: no more are
    /// tried until a running job finishes (and frees its share).
    private var shortOfResources = false
    /// Times descriptors were given back so far: a job left the table, or
    /// a start short of them closed what it had opened (a start being
    /// prepared on the loop and a spawn on a spawn thread can take the last
    /// few at once, and the one that fails frees them for the other).
    private(set) var resourcesReleased = 0

    /// Starts queued jobs while the limits and this iteration's slice allow.
    private func pump() {
        if shortOfResources, !jobs.isEmpty { return }
        shortOfResources = false
        while queueHead < queue.count, jobs.count < configuration.maxJobsInFlight, !sliceUsedUp() {
            guard let next = queue[queueHead] else {
                queueHead += 1
                continue
            }
            let needed = LoopJob.descriptors(for: next.spec, cgroup: configuration.cgroupTree != nil)
            if descriptorsInUse + needed > configuration.descriptorBudget, !jobs.isEmpty { break }
            var leaf: Result<String, Errno>?
            if configuration.cgroupTree != nil, case .success? = next.plan {
                // Its leaf is made ahead on the cgroup thread: until it is, the
                // job stays queued and the loop serves everything else.
                guard let made = readyLeaves.removeValue(forKey: next.id) else { break }
                leaf = made
            }
            _ = dequeue()
            // Short of descriptors or processes: wait for a running job to finish.
            guard launch(next, leaf: leaf) else { break }
        }
        if queueHead > 1024, queueHead * 2 > queue.count { compactQueue() }
        requestLeaves()
    }

    // MARK: Leaves made ahead (cgroup tier)

    /// Leaves the cgroup thread made for jobs near the head of the queue, by
    /// job id (a leaf is named after its job, which the job can rely on:
    /// `$CORRAL_JOB_ID` under the runner's directory); at most `leavesAhead`
    /// exist at a time. No descriptor is held for them: `cgroup.procs` is
    /// opened at spawn.
    private var readyLeaves: [JobID: Result<String, Errno>] = [:]
    private var leavesRequested = false
    /// Enough that a burst of spawns does not wait on the cgroup thread's
    /// round trips (each behind whatever scan it is doing): 8 held W2b's
    /// 5,000 spawns to 8 per scan of a host crowded with their processes.
    static let leavesAhead = 64

    /// Asks the cgroup thread for the leaves of the next queued jobs that have
    /// none (one batch out at a time). `mkdir` in cgroupfs waits for the
    /// kernel's cgroup lock, so it never runs on the loop.
    private func requestLeaves() {
        guard let tree = configuration.cgroupTree, !leavesRequested, !shuttingDown else { return }
        var ids: [JobID] = []
        var index = queueHead
        while index < queue.count, readyLeaves.count + ids.count < JobScheduler.leavesAhead,
              index < queueHead + 4 * JobScheduler.leavesAhead {
            if let next = queue[index], readyLeaves[next.id] == nil, case .success? = next.plan { ids.append(next.id) }
            index += 1
        }
        guard !ids.isEmpty else { return }
        leavesRequested = true
        let wanted = ids
        tidy({ wanted.map { MadeLeaf(id: $0, leaf: tree.makeLeaf($0.rawValue)) } }, then: { scheduler, made in
            scheduler.leavesRequested = false
            for leaf in made {
                if scheduler.queuedIndex[leaf.id] != nil, !scheduler.shuttingDown {
                    scheduler.readyLeaves[leaf.id] = leaf.leaf
                } else if case .success(let unused) = leaf.leaf {
                    scheduler.removeCgroup(unused)  // cancelled meanwhile
                }
            }
            if !scheduler.shuttingDown { scheduler.pump() }
        })
    }

    /// A queued job will not start (cancelled, or shutdown): its leaf goes.
    private func dropReadyLeaf(_ id: JobID) {
        guard case .success(let leaf)? = readyLeaves.removeValue(forKey: id) else { return }
        removeCgroup(leaf)
    }

    private func dequeue() -> Submission? {
        while queueHead < queue.count {
            let next = queue[queueHead]
            queueHead += 1
            if let next {
                queuedIndex.removeValue(forKey: next.id)
                return next
            }
        }
        return nil
    }

    private func compactQueue() {
        queue.removeFirst(queueHead)
        queueHead = 0
        queuedIndex.removeAll(keepingCapacity: true)
        for (index, submission) in queue.enumerated() {
            if let submission { queuedIndex[submission.id] = index }
        }
    }

    private func requeueAtHead(_ submission: Submission) {
        if queueHead > 0 {
            queueHead -= 1
            queue[queueHead] = submission
        } else {
            queue.insert(submission, at: 0)
            for (id, index) in queuedIndex { queuedIndex[id] = index + 1 }
        }
        queuedIndex[submission.id] = queueHead
    }

    /// Starts a job, or delivers why it cannot start. Returns false when it
    /// went back to the head of the queue to wait for resources.
    private func launch(_ submission: Submission, leaf: Result<String, Errno>?) -> Bool {
        let plan: LaunchPlan
        switch submission.plan {
        case .success(let ready)?: plan = ready
        case .failure(let failure)?:
            submission.onCompletion(PendingResult(LoopJob.failedResult(submission, failure, containment: tier)))
            return true
        case nil:
            preconditionFailure("a submission reached the scheduler without its launch plan")
        }
        let job = LoopJob(scheduler: self, submission: submission)
        switch job.start(plan, leaf: leaf) {
        case .started:
            jobs[submission.id] = job
            undelivered += 1
            // Its share, and until the spawn answers the child's ends it holds too.
            descriptorsInUse += job.descriptorCount + job.spawnDescriptors
        case .failed(let failure):
            submission.onCompletion(PendingResult(LoopJob.failedResult(submission, failure, containment: tier)))
        case .outOfResources(let error):
            resourcesReleased += 1  // what it had opened is closed again
            if jobs.isEmpty {
                // Nothing running will free anything: report it, do not spin.
                deliver(outOfResources: error, submission)
            } else {
                requeueAtHead(submission)  // retried when a running job frees its share
                return false
            }
        }
        return true
    }

    /// The spawn thread could not start a job handed to it: it leaves the
    /// table, and fails or (short of resources, with others running to free
    /// some) goes back to the head of the queue.
    func jobDidNotStart(_ job: LoopJob, _ reason: LoopJob.StartResult, plan: LaunchPlan) {
        assertOnLoopThread()
        jobs.removeValue(forKey: job.id)
        undelivered -= 1
        descriptorsInUse -= job.descriptorCount  // the child's ends went back in `spawned`
        var submission = job.submission
        submission.plan = .success(plan)
        switch reason {
        case .failed where job.cancelledWhileSpawning:
            deliver(cancelledBeforeStart: submission)  // the cancel came first
        case .failed(let failure):
            submission.onCompletion(PendingResult(LoopJob.failedResult(submission, failure, containment: tier)))
        case .outOfResources(let error):
            // Nothing running will free anything, and nothing has since the
            // spawn was handed over: report it rather than spin.
            let nothingFreed = jobs.isEmpty && resourcesReleased == job.resourcesReleasedAtStart
            resourcesReleased += 1
            if job.cancelledWhileSpawning || shuttingDown {
                deliver(cancelledBeforeStart: submission)
            } else if nothingFreed {
                deliver(outOfResources: error, submission)
            } else {
                shortOfResources = !jobs.isEmpty
                requeueAtHead(submission)  // retried when a running job frees its share
            }
        case .started:
            preconditionFailure("jobDidNotStart with .started")
        }
        if !shuttingDown { pump() }
        finishShutdownIfIdle()
    }

    /// A start that found no descriptors or processes, with nothing running
    /// that could free some: a clear failure rather than a spin.
    private func deliver(outOfResources error: Errno, _ submission: Submission) {
        submission.onCompletion(PendingResult(LoopJob.failedResult(submission, SpawnFailure(
            errno: error.code, stage: .resources,
            message: "cannot start the job: \(error) (no descriptors or processes left)"), containment: tier)))
    }

    private func deliver(cancelledBeforeStart submission: Submission) {
        submission.onCompletion(PendingResult(LoopJob.notStartedResult(submission, outcome: .cancelled, containment: tier)))
    }

    /// The host consumed `bytes` of a job's output (flow control).
    func outputConsumed(_ id: JobID, bytes: Int) {
        assertOnLoopThread()
        jobs[id]?.outputConsumed(bytes)
    }

    func assertOnLoopThread(_ function: StaticString = #function) {
        eventLoop.assertOnLoopThread(function)
    }

    /// A job has delivered its result and closed every handle.
    func jobDidFinish(_ job: LoopJob) {
        jobs.removeValue(forKey: job.id)
        resourcesReleased += 1
        shortOfResources = false  // it freed its share: worth another try
        descriptorsInUse -= job.descriptorCount
        if !shuttingDown { pump() }
        finishShutdownIfIdle()
    }

    /// A job's spawn answered: the child's ends it held are closed.
    func spawnDescriptorsClosed(_ count: Int) {
        descriptorsInUse -= count
    }

    /// A job delivered its result (its leader may still await reaping).
    func jobDidDeliver() {
        undelivered -= 1
        finishShutdownIfIdle()
    }

    private func finishShutdownIfIdle() {
        guard shuttingDown, !closedOwnHandles else { return }
        if jobs.isEmpty, inspectionsInFlight == 0 {
            closedOwnHandles = true
            escapeeSweeper?.close()
            stuckSpawnWatch?.close()
            if let abandonTimer { UVHandle.close(abandonTimer) }
            abandonTimer = nil
            if let pumpIdle { UVHandle.close(pumpIdle) }
            pumpIdle = nil
            eventLoop.closeOwnHandles()
        } else if abandonTimer == nil, undelivered == 0 {
            // Every result is out; only leaders stuck past SIGKILL, or the
            // inspector's last answers, remain. Wait for them a bounded time:
            // shutdown must not hang on the kernel.
            let timer = UVHandle.allocate(UV_TIMER, as: uv_timer_t.self, owner: self)
            abandonTimer = timer
            uv_timer_init(loop, timer)
            uv_timer_start(timer, { handle in
                unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: JobScheduler.self).abandonStuckWork()
            }, configuration.shutdownReapTimeout.timerMilliseconds, 0)
        }
    }

    private func abandonStuckWork() {
        for job in jobs.values {
            job.abandon()
            abandonedLeaders += 1
        }
        if inspectionsInFlight > 0 {
            inspectionsAbandoned = true
            inspectionsInFlight = 0
            finishShutdownIfIdle()
        }
    }
}
