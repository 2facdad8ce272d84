import CCorral
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One thread that runs closures one at a time, in the order they were
/// given. A runner has these: its delivery thread, which runs the host's
/// callbacks (output chunks, starts, results, so no host code runs on the
/// loop); its inspector, which does the /proc and cgroupfs work that could
/// take long or block in the kernel (sweep scans, pipe-holder searches,
/// `cpu.stat`); its cgroup thread (`mkdir`/`rmdir` of leaves); and its spawn threads
/// (`EventLoop.spawnThreads` of them), which clone the jobs (a `vfork`
/// returns only once the child has exec'd). A fixed number of threads per
/// runner besides the loop, whatever the number of jobs.
///
/// `run` only appends to a queue (O(1), never blocks), so the loop can
/// hand work over. Written here rather than on Dispatch: a serial queue
/// may borrow a thread from a pool that grows under blocking work, and
/// the thread count must not grow with jobs.
final class SerialWorker: Sendable {
    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var finished: (@Sendable () -> Void)?
    }

    private let state = Locked(State())
    private let available = DispatchSemaphore(value: 0)
    private let name: String
    private let priorityBoost: Int32
    private let realtimePriority: Int32?

    /// Starts the thread, named `name` (at most 15 bytes, as Linux keeps it),
    /// `priorityBoost` nice steps above the host's when the kernel allows,
    /// and in the real-time class at `realtimePriority` if given and the
    /// kernel allows (`EventLoop.raisePriority`).
    init(name: String, priorityBoost: Int32 = 0, realtimePriority: Int32? = nil) throws(CorralError) {
        self.name = name
        self.priorityBoost = priorityBoost
        self.realtimePriority = realtimePriority
        try DetachedThread.start(name) { self.threadMain() }
    }

    /// Queues `work` for the thread. Never blocks.
    func run(_ work: @escaping @Sendable () -> Void) {
        state.withLock { $0.queue.append(work) }
        available.signal()
    }

    /// Runs what is queued, then `done` (on the thread), then ends the thread.
    func finish(then done: @escaping @Sendable () -> Void) {
        state.withLock { $0.finished = done }
        available.signal()
    }

    private func threadMain() {
        cc_name_this_thread(name)
        if priorityBoost > 0 {
            var hostNice: Int32 = 0
            _ = cc_raise_this_thread_priority(priorityBoost, &hostNice)  // unprivileged: the host's, as the jobs'
        }
        if let realtimePriority { _ = cc_make_this_thread_realtime(realtimePriority) }  // unprivileged: the nice value above
        while true {
            available.wait()
            let next = state.withLock { state -> (work: (@Sendable () -> Void)?, done: (@Sendable () -> Void)?) in
                if state.head < state.queue.count {
                    let work = state.queue[state.head]
                    state.head += 1
                    // Spent closures are dropped once the queue is empty, or
                    // once they are most of it: nothing they captured lingers.
                    if state.head == state.queue.count {
                        state.queue.removeAll(keepingCapacity: true)
                        state.head = 0
                    } else if state.head >= 1024, state.head * 2 >= state.queue.count {
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
