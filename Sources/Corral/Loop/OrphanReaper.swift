import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Optional: makes this process a child subreaper, so the orphaned
/// descendants of jobs are re-parented here instead of to pid 1, and reaps
/// them on SIGCHLD. Job leaders are spawned with exit signal 0, so the
/// `waitid(P_ALL)` used here (without `__WALL`) never sees them: only the
/// adopted orphans — and any ordinary child the host process has, which is
/// why this is off unless the process belongs to Corral (the CLI, the agent).
final class OrphanReaper: LoopObject {
    private unowned let eventLoop: EventLoop
    private let signal: UnsafeMutablePointer<uv_signal_t>
    private(set) var reaped = 0

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        signal = UVHandle.allocate(UV_SIGNAL, as: uv_signal_t.self, owner: LoopObject())
        super.init()
        UVHandle.base(signal).pointee.data = unretained
        _ = cc_become_subreaper()
        uv_signal_init(eventLoop.loop, signal)
    }

    func start() {
        uv_signal_start(signal, { handle, _ in
            (LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper).reapAll()
        }, SIGCHLD)
        reapAll()  // whatever exited while nothing was listening
    }

    func stop() {
        reapAll()
        UVHandle.close(signal)
    }

    func reapAll() {
        var info = cc_exit_info()
        while cc_wait_adopted(cc_WEXITED | cc_WNOHANG, &info) == 0, info.pid != 0 {
            reaped += 1
            info = cc_exit_info()
        }
    }
}
