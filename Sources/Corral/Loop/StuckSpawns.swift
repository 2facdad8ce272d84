import CLibUV

/// Watches the spawns that are out: a spawn thread waits in the clone
/// until the child execs, so a child stuck before its exec (a frozen
/// cgroup, a hung filesystem under its working directory or binary) would
/// hold its job in `spawning` with no deadline running and no way to stop
/// it. Every `interval` while spawns are out, a job whose child has waited
/// for its exec longer than the job's timeout, or that was cancelled, has
/// the child killed through its pidfd (`SpawnWatch.abort`); the spawn then
/// answers and the job is stopped for that reason (timed out, cancelled).
/// A spawn still queued behind others is not stuck: only the time waiting
/// for the exec counts; a cancelled one is withdrawn before it begins. Bounded work per tick: one atomic read per spawn out.
final class StuckSpawns: TimerOwner {
    static let interval: UInt64 = 50  // milliseconds

    private unowned let scheduler: JobScheduler
    private var watched: Set<JobID> = []
    private var armed = false

    init(scheduler: JobScheduler) {
        self.scheduler = scheduler
        super.init(loop: scheduler.loop)
    }

    /// The job's spawn was handed to a spawn thread.
    func watch(_ job: LoopJob) {
        watched.insert(job.id)
        guard !armed else { return }
        armed = true
        uv_timer_start(timer, { handle in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: StuckSpawns.self).tick()
        }, StuckSpawns.interval, StuckSpawns.interval)
    }

    /// The job's spawn answered: nothing more to watch.
    func unwatch(_ id: JobID) {
        watched.remove(id)
        if watched.isEmpty, armed {
            armed = false
            uv_timer_stop(timer)
        }
    }

    private func tick() {
        // Answered spawns leave through `unwatch`; anything else gone is
        // removed after the walk (removing while iterating would copy the
        // set at each removal: quadratic with thousands of spawns out).
        var gone: [JobID] = []
        for id in watched {
            guard let job = scheduler.job(id), job.isSpawning, let watch = job.pending?.watch else {
                gone.append(id)
                continue
            }
            let reason: JobLifecycle.StopReason
            let waited = watch.waitingForExec
            if job.cancelledWhileSpawning {
                reason = .cancel
            } else if let timeout = job.spec.timeout, let waited, waited >= timeout {
                reason = .deadline
            } else {
                continue
            }
            switch watch.abort() {
            case .killed:
                job.spawnAborted(reason, waitedForExec: waited)
            case .notWaiting where reason == .cancel && watch.withdraw():
                job.spawnWithdrawn()  // still queued: it never clones
            case .notWaiting, .tryAgain:
                break
            }
        }
        watched.subtract(gone)
        if watched.isEmpty {
            armed = false
            uv_timer_stop(timer)
        }
    }
}
