#if canImport(Glibc)
import Glibc
#endif

/// Starts the runner's own threads (the loop, delivery, inspector and spawn
/// threads): plain detached pthreads, so the thread count is exactly what
/// the runner asks for and never grows with jobs (Dispatch and the Swift
/// concurrency pool borrow threads from pools that do).
enum DetachedThread {
    /// Runs `main` on a new detached thread; `role` names it in the error.
    static func start(_ role: String, stackSize: Int? = nil,
                      _ main: @escaping @Sendable () -> Void) throws(CorralError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if let stackSize { pthread_attr_setstacksize(&attributes, stackSize) }
        var thread = pthread_t()
        let retained = Unmanaged.passRetained(Entry(main)).toOpaque()
        let status = pthread_create(&thread, &attributes, { argument in
            Unmanaged<Entry>.fromOpaque(argument!).takeRetainedValue().main()
            return nil
        }, retained)
        guard status == 0 else {
            Unmanaged<Entry>.fromOpaque(retained).release()
            throw CorralError(.runnerFailure, "cannot start the \(role) thread: \(Errno(code: status))", errno: status)
        }
        pthread_detach(thread)
    }

    /// What the new thread runs, kept alive until it starts.
    private final class Entry: Sendable {
        let main: @Sendable () -> Void
        init(_ main: @escaping @Sendable () -> Void) { self.main = main }
    }
}
