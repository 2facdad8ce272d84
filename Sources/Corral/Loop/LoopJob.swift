import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One job on the loop: the effects of its lifecycle. Which state it is in
/// and what each event leads to is `JobLifecycle` (one state machine, in one
/// file); this class holds what the job owns — its leader (watched through a
/// pidfd), its output pipes, its stdin pipe, its leaf and one timer — and
/// performs the machine's actions on them (`perform`). Loop thread only.
///
/// The job stays in the scheduler's table until it has delivered its result
/// and every handle has closed; the handles point at it unretained.
final class LoopJob: LoopObject {
    typealias StopReason = JobLifecycle.StopReason

    enum StartResult {
        case started
        case failed(SpawnFailure)
        case outOfResources(Errno)
    }

    unowned let scheduler: JobScheduler
    let submission: Submission
    var id: JobID { submission.id }
    var spec: JobSpec { submission.spec }
    let descriptorCount: Int

    var pid: Int32 = 0
    var pidfd: Int32 = -1
    var poll: UnsafeMutablePointer<uv_poll_t>?
    /// The poll handle being closed: its pidfd is closed with it.
    var closingPoll: UnsafeMutableRawPointer?
    var timer: UnsafeMutablePointer<uv_timer_t>?
    /// What the armed timer waits for (nil: not armed).
    var timerWait: JobLifecycle.Wait?
    var outputs: [OutputPipe] = []
    var input: InputWriter?
    var openHandles = 0

    /// The job's state (`JobLifecycle`).
    var lifecycle = JobLifecycle()
    var stopReason: StopReason? { lifecycle.stopReason }
    /// Delivery has begun: nothing more is read or waited for.
    var delivered: Bool { lifecycle.hasBegunDelivery }
    /// The result has gone to the host.
    var resultHandedOver: Bool { lifecycle.hasHandedOver }
    /// How the run ended, once delivery began (the outcome).
    var ending: JobLifecycle.Ending?
    /// The inspector's answer for the result, once in.
    var finishAnswer: FinishAnswer?

    var leaderStatus: TerminationStatus?
    /// Nothing was created on the host between the leader's spawn and its
    /// exit (`forkedNothing`); nil until the exit is seen.
    var forkedNothingAtExit: Bool?
    var leaderReaped = false
    /// The leader was reaped by someone else: its pgid is no longer pinned.
    var leaderVanished = false
    var pipesForceClosed = false
    var lingeringKilled = false
    var spawnedAt: MonotonicInstant?
    /// When the clone of a spawn killed before its exec began: its
    /// deadline ran from then, so its result's `spawned` says so.
    var cloneBeganAt: MonotonicInstant?
    var leaderExitedAt: MonotonicInstant?
    var startedAt = WallClockTime.now()

    // Containment (LoopJob+Containment.swift).
    var containment: Containment
    var leaf: CgroupLeaf?
    /// Watches cgroup.events (`leafEvents`) while the leaf is waited on to empty.
    var cgroupWatch: UnsafeMutablePointer<uv_poll_t>?
    var leafEvents: Int32 = -1
    /// The leaf was seen empty after the leader had exited: it stays so.
    var leafEmpty = false
    /// The watch being closed, and the cgroup.events it watched, closed with it.
    var closingCgroupWatch: (handle: UnsafeMutableRawPointer, eventsFD: Int32)?
    /// What was killed, each process once (`killedPIDs` guards it: the
    /// leaf's kill and the sweep may both find one).
    var killed: [ProcessSummary] = []
    var killedPIDs: Set<pid_t> = []
    var escapees: Set<Int32> = []
    var pipeHolders: [PipeHolder] = []
    var leftRunning: [ProcessSummary] = []
    var leftRunningCount = 0
    /// The marker sweep repeats (`EscapeeSweeper`) until a pass finds nothing
    /// new; the result waits for that (bounded by the drain timeout).
    var sweepPending = false
    var sweepPasses = 0
    /// Passes stopped by the pidfd limit (see `EscapeeSweeper.saturatedPassLimit`).
    var saturatedPasses = 0
    /// The unreadable processes of this job's last sweep's scan, and whether
    /// that sweep saw a new one (or lost one it had found): not conclusive.
    var sweepUnreadable: Set<pid_t> = []
    var sweepInconclusive = false
    /// `.leaveRunning`: every process kept so far, the last scan's (process-group
    /// tier), and the cgroup they were moved to (cgroup tier).
    var kept: Set<pid_t> = []
    var lastSeenKept: [pid_t] = []
    var keptCgroup: String?
    var lastNewKept = MonotonicInstant.now()
    var activityAtLastNew = KeptActivity()
    var cpuTime: Duration?
    /// The job's slot in the watchdog's table, while it holds one.
    var watchdogSlot: Int32?
    /// Output handed to the host's callback and not yet consumed.
    var outputInFlight = 0
    var outputPaused = false
    /// Set from `start` until the spawn thread answers (`spawned`).
    var pending: PendingSpawn?
    /// The child's ends (and the leaf's `cgroup.procs`) held while the
    /// spawn is out, counted in the descriptor budget until it answers.
    var spawnDescriptors: Int { pending?.childEnds.count ?? 0 }
    /// `JobScheduler.resourcesReleased` when the spawn was handed over: if
    /// descriptors were given back since, a spawn short of them is worth
    /// another try.
    var resourcesReleasedAtStart = 0
    /// Handed to the spawn thread and not yet answered: no pid yet.
    var isSpawning: Bool { lifecycle.isSpawning }
    /// Cancelled before the spawn thread answered.
    var cancelledWhileSpawning: Bool { lifecycle.state == .spawning(stop: .cancel) }

    /// Its spawn has waited for the child's exec past the job's deadline,
    /// or it was cancelled meanwhile: the child is killed (`StuckSpawns`),
    /// and the job is stopped for that reason once the spawn answers.
    func spawnAborted(_ reason: StopReason, waitedForExec: Duration?) {
        scheduler.assertOnLoopThread()
        if let waitedForExec { cloneBeganAt = .now() + (.zero - waitedForExec) }
        perform(lifecycle.spawnAborted(reason))
    }

    /// Cancelled while its spawn was still queued on a spawn thread (behind
    /// a stuck one, say) and withdrawn before it began: it ends now as never
    /// started; the spawn thread's late answer finds nothing to do.
    func spawnWithdrawn() {
        scheduler.assertOnLoopThread()
        spawned(.failure(.failed(SpawnFailure(errno: ECANCELED, stage: .clone,
                                              message: "cancelled before its spawn began"))))
    }

    init(scheduler: JobScheduler, submission: Submission) {
        self.scheduler = scheduler
        var kept = submission
        kept.plan = nil  // start(_:) is given the plan; the job keeps what its result needs
        self.submission = kept
        self.descriptorCount = LoopJob.descriptors(for: submission.spec, cgroup: scheduler.configuration.cgroupTree != nil)
        self.containment = scheduler.tier
    }

    /// Descriptors a running job holds in this process: its pidfd, the read
    /// end of each output pipe, the write end of its stdin pipe, and its
    /// cgroup.events in the cgroup tier.
    static func descriptors(for spec: JobSpec, cgroup: Bool) -> Int {
        var count = cgroup ? 2 : 1
        switch spec.output.kind {
        case .separate: count += 2
        case .combined: count += 1
        case .discarded, .inherit, .inheritCombined: break
        }
        if let bytes = spec.input.bytes, !bytes.isEmpty { count += 1 }
        return count
    }

    // MARK: Start

    /// What a job holds between handing its spawn over and the answer.
    struct PendingSpawn {
        /// Every end of every pipe, closed if the spawn fails.
        var parentEnds: [Int32] = []
        /// The child's ends (and the leaf's `cgroup.procs`): closed once the
        /// spawn is over, whatever its outcome (the spawn thread uses them).
        var childEnds: [Int32] = []
        var outputEnds: [(OutputChunk.Stream, Int32)] = []
        var inputEnd: Int32?
        var input: [UInt8] = []
        /// Given back with the submission if it is requeued.
        var plan: LaunchPlan
        /// Shared with the spawn thread while the spawn is out (`StuckSpawns`).
        var watch: SpawnWatch?
    }

    /// What the spawn thread is given: values only, no job.
    struct SpawnRequest: @unchecked Sendable {  // LaunchPlan's C strings are read only
        let plan: LaunchPlan
        let command: Command
        let workingDirectory: String?
        let stdio: (Int32, Int32, Int32)
        let nofileSoft: UInt64?
        let cgroupProcs: Int32?
        let nice: Int32?
        let watch: SpawnWatch?

        func run() -> Result<Spawner.Spawned, Spawner.Failure> {
            LeaderRegistry.spawn(watch: watch) {
                Spawner.spawn(plan, command: command, workingDirectory: workingDirectory, stdio: stdio,
                              nofileSoft: nofileSoft, cgroupProcs: cgroupProcs, nice: nice, watch: watch)
            }
        }
    }

    /// Prepares the job (its leaf, made ahead on the inspector in the cgroup
    /// tier, and its pipes) and hands the spawn to the spawn thread;
    /// `spawned` completes it on the loop. `.started` means handed over.
    func start(_ plan: LaunchPlan, leaf made: Result<String, Errno>?) -> StartResult {
        scheduler.assertOnLoopThread()
        var pending = PendingSpawn(plan: plan)
        func closeAll() { (pending.parentEnds + pending.childEnds).forEach(Syscalls.close) }
        func makePipe() -> Result<(read: Int32, write: Int32), Errno> {
            let made = Syscalls.pipe()
            if case .success(let ends) = made { pending.parentEnds.append(ends.read); pending.childEnds.append(ends.write) }
            return made
        }

        switch made.map({ $0.flatMap(CgroupLeaf.open) }) {
        case .success(let opened)?: leaf = opened
        case .failure(let error)? where error.code == EMFILE || error.code == ENFILE:
            // Requeued: its leaf goes, and a new one is made when it is at the head again.
            if case .success(let path)? = made { scheduler.removeCgroup(path) }
            return .outOfResources(error)
        case .failure?:
            // This job only (e.g. cgroup.max.descendants reached): process groups.
            if case .success(let path)? = made { scheduler.removeCgroup(path) }
            containment = .processGroup
        case nil:
            break
        }
        var stdio = (scheduler.devNullRead, scheduler.devNullWrite, scheduler.devNullWrite)
        if spec.input == .inherit { stdio.0 = STDIN_FILENO }
        do throws(Errno) {
            if !plan.input.isEmpty {
                let ends = try Syscalls.pipe().get()
                pending.parentEnds.append(ends.write)
                pending.childEnds.append(ends.read)
                stdio.0 = ends.read
                pending.inputEnd = ends.write
                pending.input = plan.input
            }
            switch spec.output.kind {
            case .separate:
                let out = try makePipe().get()
                let err = try makePipe().get()
                stdio.1 = out.write
                stdio.2 = err.write
                pending.outputEnds = [(.stdout, out.read), (.stderr, err.read)]
            case .combined:
                let both = try makePipe().get()
                stdio.1 = both.write
                stdio.2 = both.write
                pending.outputEnds = [(.combined, both.read)]
            case .discarded:
                break
            case .inherit:
                stdio.1 = STDOUT_FILENO
                stdio.2 = STDERR_FILENO
            case .inheritCombined:
                stdio.1 = STDOUT_FILENO
                stdio.2 = STDOUT_FILENO
            }
        } catch {
            closeAll()
            if let leaf { Syscalls.close(leaf.procsFD) }  // not yet handed to a spawn
            discardLeaf()
            if error.code == EMFILE || error.code == ENFILE { return .outOfResources(error) }
            return .failed(SpawnFailure(errno: error.code, stage: .resources, message: "cannot create a pipe: \(error)"))
        }
        if let leaf { pending.childEnds.append(leaf.procsFD) }
        pending.watch = SpawnWatch()
        self.pending = pending
        resourcesReleasedAtStart = scheduler.resourcesReleased

        startedAt = .now()
        let request = SpawnRequest(plan: plan, command: spec.command, workingDirectory: spec.workingDirectory,
                                   stdio: stdio, nofileSoft: scheduler.configuration.childOpenFileLimit,
                                   cgroupProcs: leaf?.procsFD, nice: scheduler.childNice, watch: pending.watch)
        scheduler.stuckSpawns.watch(self)
        if let sequence = id.rawValue.split(separator: "-").last.flatMap({ UInt64($0) }) {
            watchdogSlot = scheduler.configuration.watchdog?.track(sequence: sequence)
        }
        let id = id
        scheduler.spawn({ request.run() }, then: { scheduler, spawned in
            scheduler.job(id)?.spawned(spawned)
        })
        return .started
    }

    /// The spawn thread's answer: the job runs (and is watched from now on),
    /// or it goes back to the scheduler, failed or short of resources.
    private func spawned(_ spawned: Result<Spawner.Spawned, Spawner.Failure>) {
        guard let pending else { return }
        scheduler.stuckSpawns.unwatch(id)
        pending.childEnds.forEach(Syscalls.close)
        scheduler.spawnDescriptorsClosed(pending.childEnds.count)
        self.pending = nil
        let closeParentEnds = { pending.parentEnds.forEach(Syscalls.close) }
        switch spawned {
        case .failure(.transient(let error)):
            closeParentEnds()
            discardLeaf()
            releaseWatchdogSlot()
            scheduler.jobDidNotStart(self, .outOfResources(error), plan: pending.plan)
            return
        case .failure(.failed(let failure)):
            closeParentEnds()
            discardLeaf()
            releaseWatchdogSlot()
            scheduler.jobDidNotStart(self, .failed(failure), plan: pending.plan)
            return
        case .success(let child):
            pid = child.pid
            pidfd = child.pidfd
            spawnedAt = child.aborted ? cloneBeganAt ?? .now() : .now()
            if let watchdogSlot { scheduler.configuration.watchdog?.setGroup(watchdogSlot, pid) }
        }
        if let onStart = submission.onStart, case .success(let child) = spawned, !child.aborted {
            onStart(JobStart(id: id, pid: pid, startTime: JobStart.startTime(of: pid),
                             cgroup: leaf?.path, startedAt: .now()))
        }

        watchLeader()
        for (stream, fd) in pending.outputEnds {
            openHandles += 1
            if let pipe = OutputPipe(job: self, stream: stream, fd: fd, limit: spec.outputLimit,
                                     onOutput: submission.onOutput) {
                outputs.append(pipe)
            }
        }
        if let inputEnd = pending.inputEnd {
            openHandles += 1
            input = InputWriter(job: self, fd: inputEnd, bytes: pending.input)
        }
        timer = UVHandle.allocate(UV_TIMER, as: uv_timer_t.self, owner: self)
        uv_timer_init(scheduler.loop, timer)
        openHandles += 1
        perform(lifecycle.spawned(hasTimeout: spec.timeout != nil, stopSignalIsKill: stopSignalIsKill))
    }

    private func watchLeader() {
        let poll = UVHandle.allocate(UV_POLL, as: uv_poll_t.self, owner: self)
        self.poll = poll
        openHandles += 1
        uv_poll_init(scheduler.loop, poll, pidfd)
        uv_poll_start(poll, Int32(UV_READABLE.rawValue)) { handle, _, _ in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: LoopJob.self).leaderMayHaveExited()
        }
    }

    // MARK: Timer

    /// How long the timer waits in each state that waits.
    private func delay(for wait: JobLifecycle.Wait) -> Duration {
        switch wait {
        case .deadline: spec.timeout ?? .zero
        case .grace: spec.killGrace
        case .reapWait, .drain: spec.drainTimeout
        case .finish: LoopJob.finishTimeout
        }
    }

    func startTimer(_ wait: JobLifecycle.Wait) {
        guard let timer else { return }
        timerWait = wait
        uv_update_time(scheduler.loop)  // count from now, not from the start of this loop iteration
        uv_timer_start(timer, { handle in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: LoopJob.self).timerFired()
        }, delay(for: wait).timerMilliseconds, 0)
    }

    func stopTimer() {
        guard let timer else { return }
        timerWait = nil
        uv_timer_stop(timer)
    }

    private func timerFired() {
        guard let wait = timerWait else { return }
        timerWait = nil
        // At the deadline, an exit that raced it in this loop iteration counts as the exit.
        let leader = wait == .deadline ? observeLeader() : .running
        perform(lifecycle.timerFired(wait, leader: leader, lingering: lingering, stopSignalIsKill: stopSignalIsKill))
    }

    var lingering: JobLifecycle.Lingering { spec.lingering == .kill ? .kill : .keep }
    var stopSignalIsKill: Bool { spec.stopSignal.rawValue == SIGKILL }

    override func handleDidClose(_ handle: UnsafeMutableRawPointer) {
        if handle == closingPoll {
            Syscalls.close(pidfd)
            pidfd = -1
            closingPoll = nil
        }
        if let closing = closingCgroupWatch, handle == closing.handle {
            Syscalls.close(closing.eventsFD)
            closingCgroupWatch = nil
        }
        openHandles -= 1
        // A job delivered before its sweep was conclusive stays until it is:
        // passes go on killing what carries its id.
        perform(lifecycle.settled(handlesOpen: openHandles, sweepPending: sweepPending))
    }

    // MARK: Output flow

    /// A chunk went to the host's callback: past the high mark, stop
    /// reading this job's pipes until the host catches up.
    func outputHandedOver(_ bytes: Int) {
        scheduler.assertOnLoopThread()
        outputInFlight += bytes
        if !outputPaused, outputInFlight > OutputFlow.highWater {
            outputPaused = true
            outputs.forEach { $0.pause() }
        }
    }

    /// The host's callback consumed `bytes`: below the low mark, read again.
    func outputConsumed(_ bytes: Int) {
        outputInFlight -= bytes
        if outputPaused, outputInFlight <= OutputFlow.lowWater {
            outputPaused = false
            outputs.forEach { $0.resume() }
        }
    }

    // MARK: Cancellation

    /// Cancels the job: the stop sequence if the leader still runs; if it has
    /// exited and only the pipes are draining, they are closed at once; if
    /// its spawn is still out, it is stopped as soon as it runs.
    func cancel() {
        scheduler.assertOnLoopThread()
        perform(lifecycle.cancel(stopSignalIsKill: stopSignalIsKill))
    }
}
