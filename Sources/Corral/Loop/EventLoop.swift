import CCorral
import CLibUV
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One libuv loop on one thread of its own. Other threads talk to it only
/// through `send`, which appends to a locked inbox and wakes the loop with
/// a write to an eventfd the loop polls. Everything else here is touched
/// on the loop thread only.
///
/// Not `uv_async_send`, libuv's own cross-thread wake-up: in libuv 1.44
/// the loop, handling an async event, spins (with `sched_yield`) until
/// every sender has finished its send. The loop runs in the real-time
/// class and senders do not (spawn threads, the delivery thread, the
/// host's callers); a sender preempted mid-send by CPU-bound jobs kept the
/// loop spinning, so the yield gave it nothing, and deadlines fired
/// 150-300 ms late (W7 p99). An eventfd write is one system call the
/// kernel completes whoever is preempted.
final class EventLoop: LoopObject, @unchecked Sendable {
    struct Diagnostics: Sendable {
        /// What `uv_loop_close` returned: 0, or UV_EBUSY if a handle leaked.
        var loopCloseStatus: Int32 = 0
        /// The types of handles still open at close, if any.
        var leakedHandles: [String] = []
        var orphansReaped = 0
        /// Leaders still not dead after SIGKILL when shutdown stopped waiting.
        var abandonedLeaders = 0
    }

    private enum Phase {
        case open
        case closing
        case closed
    }

    private struct Inbox {
        var commands: [LoopCommand] = []
        /// Output bytes the host's callbacks consumed, per job, since the
        /// loop last looked: flow control, accepted while closing too.
        var consumed: [JobID: Int] = [:]
        /// The inspector's answers, to run on the loop.
        var answers: [@Sendable (JobScheduler) -> Void] = []
        var wakeupClosed = false
        var phase = Phase.open
        var waiters: [@Sendable () -> Void] = []
        var diagnostics = Diagnostics()
    }

    let loop: UnsafeMutablePointer<uv_loop_t>
    /// Where the host's callbacks run: never on the loop thread.
    let delivery: SerialWorker
    /// Where host-scale /proc and cgroupfs work runs: never on the loop thread.
    let inspector: SerialWorker
    /// Where cgroup leaves are made and removed: `mkdir` and `rmdir` in
    /// cgroupfs wait for the kernel (its cgroup lock, an RCU grace period:
    /// 25-50 ms each under load), and on the inspector every sweep and
    /// result queued behind them (W7's cgroup tier: p99 60 ms from a
    /// leader's exit to its result).
    let cgroups: SerialWorker
    /// Where jobs are cloned: `vfork` returns once the child has exec'd,
    /// and under CPU saturation the kernel takes one scheduling period
    /// (≈100 ms with 100 runnable tasks on 2 cores) to run the child that
    /// far. The loop hands each spawn over and serves its timers meanwhile.
    /// `spawnThreads` of them, taken in turn (a fixed number, whatever the
    /// jobs): four children can wait for a CPU at once (with one, W7's
    /// library rows did not finish within 180 s; with four, in 58-102 s).
    let spawners: [SerialWorker]
    /// Spawns handed to each spawn thread and not yet answered (loop thread only).
    private var spawnsOut = Array(repeating: 0, count: EventLoop.spawnThreads)
    static let spawnThreads = 4
    /// The loop thread, once started (for `assertOnLoopThread`).
    nonisolated(unsafe) private var loopThread = pthread_t()
    private let wakeup: UnsafeMutablePointer<uv_poll_t>
    /// The eventfd `wakeup` polls; closed once `wakeup` has closed.
    private let wakeupFD: Int32
    private let inbox = Locked(Inbox())
    /// Loop thread only.
    private(set) var scheduler: JobScheduler!
    private var orphanReaper: OrphanReaper?

    init(configuration: JobScheduler.Configuration, reapOrphans: Bool) throws(CorralError) {
        var workers: [SerialWorker] = []  // started so far: finished if a later step fails
        do {
            delivery = try SerialWorker(name: "corral-delivery")
            workers.append(delivery)
            // Above the jobs like the loop: a result waits for its answer
            // (cpu.stat, who held the pipe), and 100 CPU-bound jobs on 2
            // cores held that answer back by seconds at the host's priority
            // (and by 0.4 s at p50 at nice -10: `raisePriority`).
            inspector = try SerialWorker(name: "corral-inspect", priorityBoost: EventLoop.priorityBoost,
                                         realtimePriority: EventLoop.workerRealtimePriority)
            workers.append(inspector)
            // Likewise: a spawn waits for its leaf.
            cgroups = try SerialWorker(name: "corral-cgroups", priorityBoost: EventLoop.priorityBoost,
                                       realtimePriority: EventLoop.workerRealtimePriority)
            workers.append(cgroups)
            // Above the jobs too: a clone waits for its child's exec, and
            // the child's setup runs at this thread's priority until then.
            var spawners: [SerialWorker] = []
            for index in 0..<EventLoop.spawnThreads {
                spawners.append(try SerialWorker(name: "corral-spawn\(index)", priorityBoost: EventLoop.priorityBoost))
                workers.append(spawners[index])
            }
            self.spawners = spawners
        } catch {
            workers.forEach { $0.finish {} }
            throw error
        }
        let wakeupFD = cc_wakeup_open()
        guard wakeupFD >= 0 else {
            workers.forEach { $0.finish {} }
            throw CorralError(.runnerFailure, "cannot create the event loop's wake-up: \(Errno(code: -wakeupFD))")
        }
        self.wakeupFD = wakeupFD
        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        var status = uv_loop_init(loop)
        if status != 0 { loop.deallocate() }
        wakeup = UVHandle.allocate(UV_POLL, as: uv_poll_t.self)
        if status == 0 {
            status = uv_poll_init(loop, wakeup, wakeupFD)
            if status != 0 { uv_loop_close(loop); loop.deallocate() }
        }
        guard status == 0 else {
            UnsafeMutableRawPointer(wakeup).deallocate()
            Syscalls.close(wakeupFD)
            workers.forEach { $0.finish {} }
            throw CorralError(.runnerFailure, "cannot create the event loop: \(UVError.message(status))")
        }
        super.init()
        UVHandle.setOwner(wakeup, self)
        uv_poll_start(wakeup, Int32(UV_READABLE.rawValue)) { handle, _, _ in
            let eventLoop = LoopObject.owner(of: handle!.pointee.data) as! EventLoop
            // Cleared before the inbox is read: a send after this read
            // writes again, and the loop comes back for it.
            cc_wakeup_clear(eventLoop.wakeupFD)
            eventLoop.drainInbox()
        }
        do {
            scheduler = try JobScheduler(eventLoop: self, configuration: configuration)
        } catch {
            uv_close(UVHandle.base(wakeup)) { UnsafeMutableRawPointer($0!).deallocate() }
            Syscalls.close(wakeupFD)
            uv_run(loop, UV_RUN_DEFAULT)
            uv_loop_close(loop)
            loop.deallocate()
            workers.forEach { $0.finish {} }
            throw error
        }
        if reapOrphans { orphanReaper = OrphanReaper(eventLoop: self) }
    }

    /// Starts the loop thread. Call once.
    func start() throws(CorralError) {
        try DetachedThread.start("loop", stackSize: 2 << 20) { self.threadMain() }
    }

    private func threadMain() {
        loopThread = pthread_self()
        cc_name_this_thread("corral-loop")
        cc_block_sigpipe_on_this_thread()
        raisePriority()
        orphanReaper?.start()
        LoopThread.enter()
        uv_run(loop, UV_RUN_DEFAULT)
        LoopThread.leave()
        // The cgroup thread finishes what it was given (leaves to remove),
        // after the inspector's last work (a `.leaveRunning` move it was
        // still making must not lose to the directory's kill), then removes
        // the runner's directory; the loop is over, so waiting is fine.
        let tree = scheduler.configuration.cgroupTree
        spawners.forEach { $0.finish {} }  // idle: every job they started has been delivered
        let cgroupsDone = DispatchSemaphore(value: 0)
        let cgroups = cgroups
        inspector.finish {
            cgroups.finish {
                tree?.removeDirectory()
                cgroupsDone.signal()
            }
        }
        // Bounded like the rest of shutdown: a thread stuck in the kernel
        // leaves the runner's directory to the next start's cleanup.
        let bound = Int(clamping: scheduler.configuration.shutdownReapTimeout.timerMilliseconds)
        if cgroupsDone.wait(timeout: .now() + .milliseconds(bound)) == .timedOut {
            cgroups.finish {}  // the inspector is stuck: the cgroup thread still ends
        }
        scheduler.configuration.watchdog?.stop()  // every job is over: it exits without killing
        let status = uv_loop_close(loop)
        var leaked: [String] = []
        if status != 0 {
            final class Names { var list: [String] = [] }
            let names = Names()
            uv_walk(loop, { handle, context in
                let name = String(cString: uv_handle_type_name(uv_handle_get_type(handle)))
                Unmanaged<Names>.fromOpaque(context!).takeUnretainedValue().list.append(name)
            }, Unmanaged.passUnretained(names).toOpaque())
            leaked = names.list
        } else {
            loop.deallocate()
        }
        let reaped = orphanReaper?.reaped ?? 0
        let abandoned = scheduler.abandonedLeaders
        let waiters = inbox.withLock { inbox -> [@Sendable () -> Void] in
            inbox.phase = .closed
            inbox.diagnostics.loopCloseStatus = status
            inbox.diagnostics.leakedHandles = leaked
            inbox.diagnostics.orphansReaped = reaped
            inbox.diagnostics.abandonedLeaders = abandoned
            let waiters = inbox.waiters
            inbox.waiters = []
            return waiters
        }
        scheduler = nil
        // Every result is queued for the host by now: shutdown returns once
        // the delivery thread has run them all.
        delivery.finish { waiters.forEach { $0() } }
    }

    /// How far below the host's nice value the loop thread runs, when the
    /// kernel allows it: CPU-bound jobs must not delay a deadline. Ten steps
    /// weigh about 9× a job at the host's nice in the CFS scheduler.
    static let priorityBoost: Int32 = 10

    /// Real-time priorities, where allowed (`raisePriority`): the loop (3)
    /// comes before the inspector and the cgroup thread (2), which come
    /// before hurried dying leaders (1): a woken loop never waits behind a
    /// scan's round-robin turn or behind a hundred leaders freeing their
    /// memory. Where only priority 1 is allowed (RLIMIT_RTPRIO 1) all share it.
    static let loopRealtimePriority: Int32 = 3
    static let workerRealtimePriority: Int32 = 2

    /// Raises this (the loop) thread's priority above the jobs'. Children
    /// cloned from it inherit the raised value, so they are told to put the
    /// host's back just before exec. Unprivileged (EACCES/EPERM), the loop
    /// keeps the host's nice and so do the jobs, with nothing to put back.
    ///
    /// A nice value orders threads only within one scheduling group, and
    /// with autogroups (`kernel.sched_autogroup_enabled`, Debian's default)
    /// each session is one: every job (a session of its own) then weighs as
    /// much as the whole runner, and 100 CPU-bound jobs on 2 cores kept the
    /// loop thread waiting 8.7 s of 10 s at nice -10. So where allowed
    /// (root, CAP_SYS_NICE, RLIMIT_RTPRIO) the loop and the inspector run in
    /// the real-time class (low priorities: above), above every normal
    /// thread of the host whatever its group. That is safe for them only:
    /// the loop does bounded work per iteration (docs/design.md), the
    /// inspector bounded walks, and the kernel leaves normal threads 5% of
    /// each CPU (`sched_rt_runtime_us`) whatever they do. The class is not
    /// inherited by anything they clone (SCHED_RESET_ON_FORK).
    private func raisePriority() {
        var hostNice: Int32 = 0
        if cc_raise_this_thread_priority(EventLoop.priorityBoost, &hostNice) == 0 {
            scheduler.childNice = hostNice
        }
        scheduler.hurriesDyingJobs = cc_make_this_thread_realtime(EventLoop.loopRealtimePriority) == 0
    }

    /// Checks, in debug builds, that loop-only state is touched on the loop
    /// thread: every scheduler and job entry point calls it.
    func assertOnLoopThread(_ function: StaticString = #function) {
        assert(pthread_equal(pthread_self(), loopThread) != 0, "\(function) called off the loop thread")
    }

    /// The host's output callback consumed `bytes` of job `id`'s output:
    /// from the delivery thread. Wakes the loop only when nothing was
    /// pending, so a burst of chunks costs one wake-up.
    func outputConsumed(_ id: JobID, bytes: Int) {
        inbox.withLock { inbox in
            guard !inbox.wakeupClosed else { return }
            let wasEmpty = inbox.consumed.isEmpty
            inbox.consumed[id, default: 0] += bytes
            if wasEmpty { wake() }
        }
    }

    /// Runs `work` on the inspector thread; `then` runs on the loop with its
    /// answer. The scheduler counts what is outstanding, and closes the
    /// loop's wake-up handle only once every answer is in.
    func inspect<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                   then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        run(on: inspector, work, then: then)
    }

    /// Runs `work` on the cgroup thread; `then` runs on the loop with its answer.
    func tidy<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        run(on: cgroups, work, then: then)
    }

    /// Runs `work` on the spawn thread with the fewest spawns out; `then`
    /// runs on the loop with its answer. Loop thread only. One thread held
    /// by a child stuck before its exec then holds up only what was already
    /// queued on it (and that is withdrawn if cancelled, `StuckSpawns`).
    func spawn<Answer: Sendable>(_ work: @escaping @Sendable () -> Answer,
                                 then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        assertOnLoopThread()
        let index = spawnsOut.indices.min { spawnsOut[$0] < spawnsOut[$1] } ?? 0
        spawnsOut[index] += 1
        run(on: spawners[index], work, then: { [self] scheduler, answer in
            spawnsOut[index] -= 1  // on the loop
            then(scheduler, answer)
        })
    }

    private func run<Answer: Sendable>(on worker: SerialWorker, _ work: @escaping @Sendable () -> Answer,
                                       then: @escaping @Sendable (JobScheduler, Answer) -> Void) {
        worker.run { [self] in
            let answer = work()
            inbox.withLock { inbox in
                // Too late: shutdown gave up on it and the loop is closing.
                guard !inbox.wakeupClosed else { return }
                inbox.answers.append { then($0, answer) }
                wake()
            }
        }
    }

    /// Hands a command to the loop. Returns false once shutdown has begun
    /// (the command is dropped).
    @discardableResult
    func send(_ command: LoopCommand) -> Bool {
        inbox.withLock { inbox in
            guard inbox.phase == .open else { return false }
            inbox.commands.append(command)
            // Under the lock: the loop closes `wakeup` only after the phase
            // has left .open, so no send can race with the close.
            wake()
            return true
        }
    }

    /// Begins shutdown (once) and calls `done` when the loop has closed.
    func shutdown(done: @escaping @Sendable () -> Void) {
        let finishedAlready = inbox.withLock { inbox -> Bool in
            switch inbox.phase {
            case .closed:
                return true
            case .closing:
                inbox.waiters.append(done)
                return false
            case .open:
                inbox.phase = .closing
                inbox.waiters.append(done)
                inbox.commands.append(.shutdown)
                wake()
                return false
            }
        }
        if finishedAlready { done() }
    }

    var diagnostics: Diagnostics { inbox.withLock { $0.diagnostics } }

    private func drainInbox() {
        let (commands, consumed, answers) = inbox.withLock {
            inbox -> ([LoopCommand], [JobID: Int], [@Sendable (JobScheduler) -> Void]) in
            defer {
                inbox.commands = []
                inbox.consumed = [:]
                inbox.answers = []
            }
            return (inbox.commands, inbox.consumed, inbox.answers)
        }
        for (id, bytes) in consumed { scheduler.outputConsumed(id, bytes: bytes) }
        for answer in answers { answer(scheduler) }
        for command in commands {
            switch command {
            case .submit(let submission): scheduler.submit(submission)
            case .cancel(let id): scheduler.cancel(id)
            case .shutdown: scheduler.beginShutdown()
            }
        }
    }

    /// The orphan reaper's pass answered (loop thread).
    func orphanPassDone(_ done: Int?) {
        orphanReaper?.passDone(done)
    }

    /// Wakes the loop (any thread, under the inbox lock, while
    /// `wakeupClosed` is false: the descriptor is still open).
    private func wake() {
        _ = cc_wakeup_signal(wakeupFD)  // fails only on a closed descriptor, which the lock rules out
    }

    override func handleDidClose(_ handle: UnsafeMutableRawPointer) {
        if handle == UnsafeMutableRawPointer(wakeup) { Syscalls.close(wakeupFD) }
    }

    /// Called by the scheduler once every job is done during shutdown:
    /// closes the loop's own handles so `uv_run` returns.
    func closeOwnHandles() {
        orphanReaper?.stop()
        inbox.withLock { $0.wakeupClosed = true }
        UVHandle.close(wakeup)
    }
}
