import CLibUV

/// Repeats the marker sweeps that must run until a scan of /proc finds
/// nothing new: after every job (its processes that left the group, or its
/// leaf, are killed), and for `.leaveRunning` (what it left is listed).
/// One pass per job per tick, and every job due in a tick shares one scan
/// (`JobScheduler.processSnapshot`), so a burst of exits costs one scan,
/// not one each. Ticks come from a timer, never a spin: between two passes
/// the loop serves every other event. Loop thread only.
///
/// Why passes in later loop iterations: a pass that finds nothing new is
/// conclusive only if its scan was taken after everything it is compared
/// with was signalled or moved. A scan is retaken whenever a process has
/// been created since the last one, or a leader reaped (its group is then
/// read too), so a pass in a later iteration than the last kill sees every
/// process that could still fork; a process forked after that scan has a
/// parent the scan saw, which was already killed (and a process with a
/// pending SIGKILL cannot complete a fork).
final class EscapeeSweeper: LoopObject {
    /// Passes a job gets before its result goes out regardless (the drain
    /// timeout bounds the wait anyway).
    static let passLimit = 48

    private unowned let scheduler: JobScheduler
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var due: [JobID] = []
    private var armed = false
    /// How long the last tick took: the next one waits four times as long
    /// (from 1 to 100 ms), so sweeping takes at most about a fifth of the
    /// loop's time, and a burst of exits shares fewer, fuller scans.
    private var lastTick = Duration.zero

    init(scheduler: JobScheduler) {
        self.scheduler = scheduler
        timer = UVHandle.allocate(UV_TIMER, as: uv_timer_t.self)
        super.init()
        UVHandle.setOwner(timer, self)
        uv_timer_init(scheduler.loop, timer)
    }

    /// Runs a pass for `job` in a later loop iteration (1 ms on, so what
    /// was just killed has time to exit, or four times what the last tick took),
    /// and more while each finds something new.
    func request(_ job: LoopJob) {
        job.sweepPending = true
        if !due.contains(job.id) { due.append(job.id) }
        guard !armed else { return }
        armed = true
        uv_timer_start(timer, { handle in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: EscapeeSweeper.self).tick()
        }, min(max(1, 4 * lastTick.timerMilliseconds), 100), 0)
    }

    private func tick() {
        let started = MonotonicInstant.now()
        armed = false
        let jobs = due
        due = []
        var again: [LoopJob] = []
        for id in jobs {
            guard let job = scheduler.job(id), job.sweepPending else { continue }
            if job.sweepPass() { again.append(job) }
        }
        lastTick = MonotonicInstant.now() - started
        again.forEach(request)
    }

    func close() { UVHandle.close(timer) }
}
