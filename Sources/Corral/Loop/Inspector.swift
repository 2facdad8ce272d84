import CCorral
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The runner's one worker thread for what reads /proc or cgroupfs at host
/// scale or may block in the kernel: the escapee sweep's scan, the search
/// for who holds a job's pipes, command names, `cpu.stat`, the moves and
/// listings of `.leaveRunning`, and removing leaves (`rmdir`). One thread
/// per runner, whatever the number of jobs.
///
/// The loop hands it work (O(1), never blocks) through `EventLoop.inspect`;
/// each answer comes back to the loop through the loop's inbox and
/// `uv_async_send`, where the loop does what it says: signals, records,
/// delivers. The queue is bounded by the jobs in flight: a job has at most
/// one inspection outstanding (its finishing one), and the sweeper at most
/// one batch for all jobs.
final class Inspector: Sendable {
    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var finished: (@Sendable () -> Void)?
    }

    private let state = Locked(State())
    private let available = DispatchSemaphore(value: 0)

    init() throws(CorralError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let retained = Unmanaged.passRetained(self).toOpaque()
        let status = pthread_create(&thread, &attributes, { argument in
            Unmanaged<Inspector>.fromOpaque(argument!).takeRetainedValue().threadMain()
            return nil
        }, retained)
        guard status == 0 else {
            Unmanaged<Inspector>.fromOpaque(retained).release()
            throw CorralError(.runnerFailure, "cannot start the inspector thread: \(Errno(code: status))", errno: status)
        }
        pthread_detach(thread)
    }

    /// Queues `work` for the inspector thread. Never blocks.
    func run(_ work: @escaping @Sendable () -> Void) {
        state.withLock { $0.queue.append(work) }
        available.signal()
    }

    /// Runs what is queued, then `done` (on the inspector thread), then ends the thread.
    func finish(then done: @escaping @Sendable () -> Void) {
        state.withLock { $0.finished = done }
        available.signal()
    }

    private func threadMain() {
        cc_name_this_thread("corral-inspect")
        while true {
            available.wait()
            let next = state.withLock { state -> (work: (@Sendable () -> Void)?, done: (@Sendable () -> Void)?) in
                if state.head < state.queue.count {
                    let work = state.queue[state.head]
                    state.head += 1
                    if state.head >= 256, state.head * 2 >= state.queue.count {
                        state.queue.removeFirst(state.head)
                        state.head = 0
                    }
                    return (work, nil)
                }
                return (nil, state.finished)
            }
            if let work = next.work {
                work()
            } else if let done = next.done {
                done()
                return
            }
        }
    }
}

/// Which thread is a running loop: set by the loop thread while `uv_run`
/// runs, so code that scans /proc or cgroupfs, or makes and removes
/// cgroups, can check in debug builds that it is not on it
/// (`assertNotOnLoopThread`). A regression that moves such a call back onto
/// the loop then fails every test that reaches it.
enum LoopThread {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func enter() { pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1)) }
    static func leave() { pthread_setspecific(key, nil) }
    static var isCurrent: Bool { pthread_getspecific(key) != nil }
}

/// Checks, in debug builds, that host-scale /proc or cgroupfs work (or a
/// cgroup `mkdir`/`rmdir`) is not running on a loop thread: it belongs on
/// the inspector (see `Inspector`).
@inline(__always)
func assertNotOnLoopThread(_ function: StaticString = #function) {
    assert(!LoopThread.isCurrent, "\(function) runs on the loop thread: it belongs on the inspector")
}
