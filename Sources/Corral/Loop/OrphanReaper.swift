import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Optional: makes this process a child subreaper, so the orphaned
/// descendants of jobs are re-parented here instead of to pid 1, and reaps
/// them on SIGCHLD. It reaps only children that are not job leaders
/// (`LeaderRegistry`), each by pid.
///
/// Off by default: it would also reap any ordinary child of the host
/// process. Corral's own CLI and agent turn it on.
///
/// Every job leader's exit raises SIGCHLD too (exec resets the exit
/// signal), and listing the children costs as much as there are jobs, so
/// SIGCHLDs are coalesced: one pass at most every `coalescing`, not one per
/// exit (at 5,000 jobs in flight that was quadratic). A pass lists the
/// children on the inspector, never on the loop: where the kernel lacks
/// the `children` file that is a scan of every process on the host (with
/// 1,000 jobs, `corral batch` stopped them ~50 ms late while the loop
/// scanned). One pass is out at a time.
final class OrphanReaper: LoopObject {
    private unowned let eventLoop: EventLoop
    private let signal: UnsafeMutablePointer<uv_signal_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var passScheduled = false
    /// A pass is on the inspector; `passAgain`: a SIGCHLD came meanwhile.
    private var passOut = false
    private var passAgain = false
    private var stopped = false
    private(set) var reaped = 0
    static let coalescing: UInt64 = 50  // ms

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        signal = UVHandle.allocate(UV_SIGNAL, as: uv_signal_t.self)
        timer = UVHandle.allocate(UV_TIMER, as: uv_timer_t.self)
        super.init()
        UVHandle.setOwner(signal, self)
        UVHandle.setOwner(timer, self)
        _ = cc_become_subreaper()
        uv_signal_init(eventLoop.loop, signal)
        uv_timer_init(eventLoop.loop, timer)
    }

    func start() {
        uv_signal_start(signal, { handle, _ in
            (LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper).schedulePass(after: OrphanReaper.coalescing)
        }, SIGCHLD)
        sendPass()  // whatever exited while nothing was listening
    }

    /// The last pass, on the loop: the runner is closing and no job is
    /// left whose deadline it could delay.
    func stop() {
        stopped = true
        if let done = OrphanReaper.pass() { reaped += done } else { LeaderRegistry.reaperGaveUp() }
        UVHandle.close(signal)
        UVHandle.close(timer)
    }

    /// A pass in `milliseconds` (1 ms when one was put off by spawns under
    /// way: new spawns wait for it meanwhile).
    private func schedulePass(after milliseconds: UInt64) {
        guard !passScheduled, !stopped else { return }
        passScheduled = true
        uv_timer_start(timer, { handle in
            let reaper = LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper
            reaper.passScheduled = false
            reaper.sendPass()
        }, milliseconds, 0)
    }

    private func sendPass() {
        guard !stopped else { return }
        guard !passOut else {
            passAgain = true
            return
        }
        passOut = true
        eventLoop.inspect({ OrphanReaper.pass() }, then: { [eventLoop] _, done in
            eventLoop.orphanPassDone(done)
        })
    }

    /// The inspector's answer (on the loop).
    func passDone(_ done: Int?) {
        passOut = false
        guard !stopped else { return }
        guard let done else {
            // Spawns under way, and new ones wait for the next pass: in 1 ms,
            // even if a coalesced pass was due later (the timer restarts).
            passScheduled = false
            schedulePass(after: 1)
            return
        }
        reaped += done
        if passAgain {
            passAgain = false
            schedulePass(after: OrphanReaper.coalescing)
        }
    }

    /// Reaps every child that is no job leader; nil if spawns under way
    /// made it wait (see `LeaderRegistry.withLeaders`). The children are
    /// listed before the registry's lock is taken (a scan of /proc must
    /// not hold up spawns and the loop's reaps); those registered, or
    /// being spawned, by the time it is taken are spared.
    static func pass() -> Int? {
        let children = ChildList.current()
        return LeaderRegistry.withLeaders { leaders in
            var reaped = 0
            for child in children where !leaders.contains(child) {
                var info = cc_exit_info()
                if cc_wait_pid(child, cc_WEXITED | cc_WNOHANG, &info) == 0, info.pid != 0 { reaped += 1 }
            }
            return reaped
        }
    }
}

/// This process's children, from /proc/self/task/*/children, or by a scan
/// of /proc where the kernel lacks CONFIG_PROC_CHILDREN.
enum ChildList {
    static func current() -> [pid_t] {
        var children: [pid_t] = []
        var sawChildrenFile = false
        for thread in ProcFiles.entries("/proc/self/task") {
            guard let text = ProcFiles.read("/proc/self/task/\(thread)/children") else { continue }
            sawChildrenFile = true
            children += text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pid_t($0) }
        }
        if sawChildrenFile { return children }
        let me = getpid()
        return ProcFiles.processIDs().filter { ProcFiles.processInfo(of: $0)?.parent == me }
    }
}
