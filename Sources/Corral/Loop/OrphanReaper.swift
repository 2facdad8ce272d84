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
/// exit (at 5,000 jobs in flight that was quadratic).
final class OrphanReaper: LoopObject {
    private unowned let eventLoop: EventLoop
    private let signal: UnsafeMutablePointer<uv_signal_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var passScheduled = false
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
            (LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper).schedulePass()
        }, SIGCHLD)
        reapAll()  // whatever exited while nothing was listening
    }

    func stop() {
        stopped = true
        reapAll()
        UVHandle.close(signal)
        UVHandle.close(timer)
    }

    /// A pass put off by spawns under way runs again in 1 ms: new spawns
    /// wait for it meanwhile.
    private func retryPass() {
        passScheduled = true
        uv_timer_start(timer, { handle in
            let reaper = LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper
            reaper.passScheduled = false
            reaper.reapAll()
        }, 1, 0)
    }

    private func schedulePass() {
        guard !passScheduled else { return }
        passScheduled = true
        uv_timer_start(timer, { handle in
            let reaper = LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper
            reaper.passScheduled = false
            reaper.reapAll()
        }, OrphanReaper.coalescing, 0)
    }

    func reapAll() {
        let done = LeaderRegistry.withLeaders { leaders in
            var reaped = 0
            for child in ChildList.current() where !leaders.contains(child) {
                var info = cc_exit_info()
                if cc_wait_pid(child, cc_WEXITED | cc_WNOHANG, &info) == 0, info.pid != 0 { reaped += 1 }
            }
            return reaped
        }
        if let done {
            reaped += done
        } else if !stopped {
            retryPass()  // spawns under way: right after them (new ones wait)
        } else {
            LeaderRegistry.reaperGaveUp()
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
