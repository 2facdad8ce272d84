#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex.
///
/// Hand-written instead of `Synchronization.Mutex` for one reason: on
/// Linux that Mutex is a bare futex, invisible to ThreadSanitizer, which
/// then reports every access it guards as a race. A pthread mutex is
/// intercepted, so the engine's TSan pass (scripts/test) sees the real
/// happens-before edges and its reports mean something.
///
/// With priority inheritance: the loop and the inspector run in the
/// real-time class (`EventLoop.raisePriority`) and share locks (the loop's
/// inbox) with threads of the normal class (spawn threads, the delivery
/// thread, the host's callers). Without it, a normal thread preempted by
/// CPU-bound jobs while holding one kept the loop waiting 100-400 ms.
/// With it, the holder runs at the waiter's priority until it unlocks;
/// uncontended, the lock is still one atomic operation in user space.
final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_setprotocol(&attributes, Int32(PTHREAD_PRIO_INHERIT))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
