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
final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
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
