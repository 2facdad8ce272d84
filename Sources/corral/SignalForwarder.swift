import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Takes SIGINT, SIGTERM, SIGHUP and SIGQUIT aimed at corral itself on one
/// thread (`sigwait`), so the jobs get their stop sequence and their results
/// are reported before corral exits (exit status 128 + the signal, as
/// timeout(1) does). SIGQUIT too: left to its default, Swift's backtracer
/// took it for a crash, printed a report and let corral run on.
///
/// - Important: Create it before any other thread (the runner's loop
///   thread): the signals are blocked in the creating thread and in every
///   thread started after it, so none can take the default action.
final class SignalForwarder: Sendable {
    private struct State {
        var received: Int32?
        var count = 0
        var handler: (@Sendable (Int32) -> Void)?
    }

    private let state = Mutex(State())

    init() {
        var set = SignalForwarder.signals
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let thread = Thread { [self] in
            var set = SignalForwarder.signals
            while true {
                var number: Int32 = 0
                guard sigwait(&set, &number) == 0 else { continue }
                let handler = state.withLock { state -> (@Sendable (Int32) -> Void)? in
                    if state.received == nil { state.received = number }
                    state.count += 1
                    return state.handler
                }
                handler?(number)
            }
        }
        thread.start()
    }

    /// Calls `handler` on every signal (on the signal thread), at once if
    /// one already came.
    func onSignal(_ handler: @escaping @Sendable (Int32) -> Void) {
        let pending = state.withLock { state -> Int32? in
            state.handler = handler
            return state.received
        }
        if let pending { handler(pending) }
    }

    /// The first signal received, if any.
    var signal: Int32? { state.withLock { $0.received } }

    /// How many signals came so far.
    var count: Int { state.withLock { $0.count } }

    private static var signals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&set, number) }
        return set
    }
}
