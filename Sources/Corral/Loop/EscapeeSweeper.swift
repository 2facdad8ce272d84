import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Repeats the marker sweeps that must run until a scan of /proc finds
/// nothing new: after every job (its processes that left the group, or its
/// leaf, are killed), and for `.leaveRunning` (what it left is listed).
/// The scan runs on the inspector thread, never on the loop: every job due
/// is one order of a batch, a batch costs one scan, and one batch at a time
/// is out. The loop then signals what the inspector found. Ticks come from
/// a timer, never a spin: between two batches the loop serves every other
/// event. Loop thread only.
///
/// Why a pass that finds nothing new is conclusive: its scan was taken (on
/// the inspector) after the loop sent the batch, so after every signal the
/// loop had sent to the job; a process forked after that scan has a parent
/// the scan saw, which was already killed (and a process with a pending
/// SIGKILL cannot complete a fork).
///
/// Pid reuse: the inspector opens a pidfd for each process it found, then
/// reads the job marker again: with the pidfd open the pid cannot be
/// recycled, so a process that still carries the marker is the one to
/// signal. The pidfd goes to the loop with the answer and the loop signals
/// through it (`pidfd_send_signal`): a process that died meanwhile makes
/// the signal fail (ESRCH) instead of hitting whoever took its pid.
final class EscapeeSweeper: TimerOwner {
    /// Passes a job gets before its result goes out regardless (the drain
    /// timeout bounds the wait anyway).
    static let passLimit = 48
    /// Passes that each killed a full batch (`pidfdLimit`) a job gets on
    /// top: thousands of escapees are killed a batch per pass, not given up
    /// on after `passLimit` (bounded still: fewer than pid_max in all).
    static let saturatedPassLimit = 512
    /// Pidfds one batch may hold at most; a job with more candidates is
    /// inconclusive and swept again (descriptors stay bounded).
    static let pidfdLimit = 256

    private unowned let scheduler: JobScheduler
    /// Jobs due a repeating pass, and one-off signal sweeps (the stop signal).
    private var due: [JobID] = []
    private var dueSet: Set<JobID> = []
    private var oneOff: [(JobID, Int32)] = []
    private var armed = false
    private var inFlight = false
    /// The CPU time the last batch took on the inspector, and when its
    /// answer came: the next one starts no sooner than four times as long
    /// after that (at least 1 ms from now, at most 100 ms), so a burst of
    /// exits shares fewer, fuller scans and sweeping takes at most a fifth
    /// of a CPU — while a job ending alone, long after the last batch, is
    /// swept at once. CPU time, not the round trip: a scan that waited in
    /// the kernel (a /proc read behind a process in its exec, 50-65 ms
    /// under CPU saturation for 1-2 ms of CPU) cost nothing to space out,
    /// and spacing by it put every result due 100 ms further off.
    private var lastBatch = Duration.zero
    private var lastBatchEnded = MonotonicInstant.now()

    init(scheduler: JobScheduler) {
        self.scheduler = scheduler
        super.init(loop: scheduler.loop)
    }

    /// Runs a pass for `job` in a later loop iteration (1 ms on, so what
    /// was just killed has time to exit, or four times what the last batch
    /// took), and more while each finds something new.
    func request(_ job: LoopJob) {
        job.sweepPending = true
        if dueSet.insert(job.id).inserted { due.append(job.id) }
        arm()
    }

    /// One sweep sending `signal` (and SIGCONT) to what carries the job's
    /// id outside its group, not repeated: the stop signal, process-group tier.
    func requestSignal(_ job: LoopJob, _ signal: Int32) {
        oneOff.append((job.id, signal))
        arm()
    }

    /// Milliseconds until the next batch (see `lastBatch`).
    static func delay(lastBatch: Duration, since ended: Duration) -> UInt64 {
        let spacing = 4 * lastBatch.timerMilliseconds
        let waited = ended.timerMilliseconds
        return min(max(1, spacing > waited ? spacing - waited : 1), 100)
    }

    private func arm() {
        guard !armed, !inFlight else { return }
        armed = true
        uv_timer_start(timer, { handle in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: EscapeeSweeper.self).tick()
        }, EscapeeSweeper.delay(lastBatch: lastBatch, since: MonotonicInstant.now() - lastBatchEnded), 0)
    }

    private func tick() {
        armed = false
        var orders: [SweepOrder] = []
        for id in due {
            guard let job = scheduler.job(id), job.sweepPending else { continue }
            orders.append(job.sweepOrder(signal: SIGKILL, repeating: true))
        }
        for (id, signal) in oneOff {
            guard let job = scheduler.job(id) else { continue }
            orders.append(job.sweepOrder(signal: signal, repeating: false))
        }
        due = []
        dueSet = []
        oneOff = []
        guard !orders.isEmpty else { return }
        inFlight = true
        let leaders = scheduler.unreapedLeaders()
        let scanner = scheduler.scanner
        let rescan = orders.contains(where: \.rescan)
        let batch = orders
        scheduler.inspect({
            let started = ThreadCPUClock.now()
            let answers = SweepOrder.run(batch, leaders: leaders, rescan: rescan, scanner: scanner)
            return (answers, ThreadCPUClock.now() - started)
        }, then: { scheduler, done in
            scheduler.sweeper.finished(done.0, cost: done.1)
        })
    }

    private func finished(_ answers: [SweepAnswer], cost: Duration) {
        inFlight = false
        lastBatchEnded = .now()
        lastBatch = cost
        var again: [LoopJob] = []
        for answer in answers {
            guard let job = scheduler.job(answer.id) else {
                // Delivered and gone (its drain timeout came first): what was
                // found still carries its id, checked with the pidfd open.
                if case .signal(let signal, _) = answer.work {
                    for finding in answer.findings {
                        _ = cc_pidfd_send_signal(finding.pidfd, signal)
                        if signal != SIGKILL { _ = cc_pidfd_send_signal(finding.pidfd, SIGCONT) }
                    }
                }
                answer.findings.forEach { Syscalls.close($0.pidfd) }
                continue
            }
            if job.apply(answer) { again.append(job) }
        }
        again.forEach(request)
        if !due.isEmpty || !oneOff.isEmpty { arm() }
    }

}

/// What the loop asks of the inspector for one job in a sweep batch.
struct SweepOrder: Sendable {
    enum Work: Sendable {
        /// Find what carries the id outside the group; the loop signals it.
        case signal(Int32, repeating: Bool)
        /// `.leaveRunning`, process-group tier: list what carries the id.
        case listMarked
        /// `.leaveRunning`, cgroup tier: move what is in the leaf to the
        /// job's daemon cgroup (made on first use), and list that cgroup.
        case keepInCgroup(leaf: String, keptCgroup: String?, daemons: String)
    }

    let id: JobID
    let leader: pid_t
    /// Members of this group got the group's signals: not signalled again.
    let skipGroup: pid_t?
    /// Already found (their names are known).
    let known: Set<pid_t>
    let work: Work
    /// The job's last pass was inconclusive: no reuse of an older scan.
    let rescan: Bool

    /// Runs a batch on the inspector thread: one scan, shared by every order.
    static func run(_ orders: [SweepOrder], leaders: Set<pid_t>, rescan: Bool,
                    scanner: SweepScanner) -> [SweepAnswer] {
        assertNotOnLoopThread()
        let needsScan = orders.contains { if case .keepInCgroup = $0.work { false } else { true } }
        let snapshot = needsScan ? scanner.snapshot(leaders: leaders, rescan: rescan) : nil
        var pidfds = 0
        return orders.map { order in
            var answer = SweepAnswer(id: order.id, work: order.work, unreadable: snapshot?.unreadable ?? [])
            switch order.work {
            case .signal:
                for candidate in rootsFirst(snapshot?.byJob[order.id.rawValue] ?? []) where candidate.pid != order.leader {
                    if candidate.group == order.skipGroup { continue }
                    guard pidfds < EscapeeSweeper.pidfdLimit else {
                        answer.inconclusive = true
                        answer.saturated = true
                        break
                    }
                    let pidfd = cc_pidfd_open(candidate.pid)
                    guard pidfd >= 0 else {
                        if errno != ESRCH { answer.inconclusive = true }  // EMFILE: look again
                        continue  // ESRCH: gone since the scan
                    }
                    // Pinned now: is it still the process the scan saw?
                    guard scanner.carries(candidate.pid, jobID: order.id.rawValue) else {
                        Syscalls.close(pidfd)
                        answer.inconclusive = true  // alive but unreadable for now (an exec): look again
                        continue
                    }
                    pidfds += 1
                    // Named before the signal: once dead, it has no name to read.
                    let command = order.known.contains(candidate.pid) ? nil : ProcFiles.command(of: candidate.pid)
                    answer.findings.append(SweepFinding(pid: candidate.pid, pidfd: pidfd, command: command))
                }
            case .listMarked:
                answer.marked = (snapshot?.byJob[order.id.rawValue] ?? []).map(\.pid).filter { $0 != order.leader }
                answer.activity = KeptActivity(of: answer.marked)
            case .keepInCgroup(let leaf, let keptCgroup, let daemons):
                var destination = keptCgroup ?? daemons
                if keptCgroup == nil {
                    let path = daemons + "/" + order.id.rawValue
                    let made = Syscalls.mkdir(path, 0o755)
                    if made == nil || made?.code == EEXIST { destination = path }
                }
                // Out of the leaf (its children are then born where it went)...
                let members = CgroupLeaf.members(leaf).filter { $0 != order.leader }
                CgroupLeaf.move(members, to: destination)
                answer.keptCgroup = destination
                answer.moved = members
                // ...and watched there until it stops forking.
                answer.marked = destination == daemons ? [] : CgroupLeaf.members(destination)
                answer.activity = KeptActivity(of: answer.marked)
            }
            return answer
        }
    }
}

/// Candidates whose parent is not one of them come first: the root of a
/// tree that forks all the time (`while :; do sleep 1000 & done`) is then
/// among the first `pidfdLimit` killed, even when its children number
/// thousands and the pid counter has wrapped (so /proc lists them first).
/// Once it is dead the tree stops growing and later passes take the rest.
func rootsFirst(_ candidates: [ProcessSnapshot.Candidate]) -> [ProcessSnapshot.Candidate] {
    let pids = Set(candidates.map(\.pid))
    return candidates.filter { !pids.contains($0.parent) } + candidates.filter { pids.contains($0.parent) }
}

struct SweepFinding: Sendable {
    let pid: pid_t
    /// Open, and pinned before the marker was read again; the loop signals through it and closes it.
    let pidfd: Int32
    /// Nil if the loop already knows it.
    let command: String?
}

/// The inspector's answer for one order.
struct SweepAnswer: Sendable {
    let id: JobID
    let work: SweepOrder.Work
    /// User processes whose environment read empty in the scan (mid-exec).
    var unreadable: Set<pid_t>
    var findings: [SweepFinding] = []
    /// Something could not be told yet (mid-exec, out of descriptors): sweep again.
    var inconclusive = false
    /// The pass stopped at `pidfdLimit` findings: it made full progress, so
    /// it counts against `saturatedPassLimit`, not `passLimit`.
    var saturated = false
    /// `.listMarked`: what carries the id; `.keepInCgroup`: the members of the kept cgroup.
    var marked: [pid_t] = []
    var moved: [pid_t] = []
    var keptCgroup: String?
    /// `.listMarked`, `.keepInCgroup`: what the marked processes are doing.
    var activity = KeptActivity()

    init(id: JobID, work: SweepOrder.Work, unreadable: Set<pid_t>) {
        self.id = id
        self.work = work
        self.unreadable = unreadable
    }
}

/// What the processes a `.leaveRunning` job left are doing, to tell a daemon
/// that stopped forking from one the scheduler has not run lately. On a
/// loaded host a shell still forking workers can wait hundreds of
/// milliseconds for a CPU; wall time alone would call it quiet and count it
/// short.
struct KeptActivity: Sendable {
    /// One of them is runnable (`R`): it may be about to fork.
    var runnable = false
    /// Their summed user and system time, in clock ticks.
    var cpuTicks: UInt64 = 0

    init() {}

    /// Reads `/proc/<pid>/stat` of each (inspector only).
    init(of pids: [pid_t]) {
        assertNotOnLoopThread()
        for pid in pids {
            guard let info = ProcFiles.processInfo(of: pid) else { continue }
            if info.state == CChar(UInt8(ascii: "R")) { runnable = true }
            cpuTicks += UInt64(info.cpu_ticks)
        }
    }

    /// Quiet since `before`: nothing runnable, or they had the CPU for a
    /// while (`keptQuietCPU`) and made nothing new with it.
    func isQuiet(since before: KeptActivity) -> Bool {
        !runnable || cpuTicks >= before.cpuTicks + KeptActivity.quietCPUTicks
    }

    /// 100 ms of CPU at the usual 100 ticks per second.
    static let quietCPUTicks: UInt64 = 10
}
