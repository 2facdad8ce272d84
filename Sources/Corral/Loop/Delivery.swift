import CCorral
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The thread that runs the host's callbacks — output chunks, starts and
/// results — so that no host code ever runs on the loop thread.
///
/// The loop only appends to a queue (O(1), never blocks). Callbacks run
/// here one at a time, in the order the loop handed them over, so a job's
/// output always precedes its result. A callback that blocks holds up the
/// callbacks behind it, never a deadline: the loop keeps firing timers,
/// and a job whose output waits here past `OutputFlow.highWater` stops
/// being read (its own writes then block), so memory stays bounded.
final class Delivery: Sendable {
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
            Unmanaged<Delivery>.fromOpaque(argument!).takeRetainedValue().threadMain()
            return nil
        }, retained)
        guard status == 0 else {
            Unmanaged<Delivery>.fromOpaque(retained).release()
            throw CorralError(.runnerFailure, "cannot start the delivery thread: \(Errno(code: status))", errno: status)
        }
        pthread_detach(thread)
    }

    /// Queues `work` to run on the delivery thread. Never blocks.
    func run(_ work: @escaping @Sendable () -> Void) {
        state.withLock { $0.queue.append(work) }
        available.signal()
    }

    /// Runs what is queued, then `done`, then ends the thread.
    func finish(then done: @escaping @Sendable () -> Void) {
        state.withLock { $0.finished = done }
        available.signal()
    }

    private func threadMain() {
        cc_name_this_thread("corral-delivery")
        while true {
            available.wait()
            let next = state.withLock { state -> (work: (@Sendable () -> Void)?, done: (@Sendable () -> Void)?) in
                if state.head < state.queue.count {
                    let work = state.queue[state.head]
                    state.head += 1
                    if state.head >= 1024, state.head * 2 >= state.queue.count {
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

/// Per-job flow control between a pipe read by the loop and the host's
/// output callback: bytes handed over and not yet consumed. Past the high
/// mark the loop stops reading the job's pipes; below the low mark it reads
/// again.
enum OutputFlow {
    static let highWater = 256 * 1024
    static let lowWater = 64 * 1024
}
