import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// What the loop shares with the spawn thread about one spawn, so that a
/// child stuck between clone and exec (a frozen cgroup, a hung filesystem
/// under its working directory or binary) can still be killed: the spawn
/// thread waits in the clone until the child execs, and only the child's
/// pidfd, written by the kernel where the loop can read it, reaches it.
/// `StuckSpawns` decides when; `abort` never waits for the spawn thread.
final class SpawnWatch: @unchecked Sendable {  // the C side synchronises with atomics
    let pointer: OpaquePointer

    init?() {
        guard let pointer = cc_spawn_watch_create() else { return nil }
        self.pointer = pointer
    }

    deinit { cc_spawn_watch_destroy(pointer) }

    /// How long the spawn thread has been waiting for the child's exec; nil
    /// if it is not (the spawn is still queued, or has answered).
    var waitingForExec: Duration? {
        let nanoseconds = cc_spawn_watch_cloning_ns(pointer)
        return nanoseconds < 0 ? nil : .nanoseconds(nanoseconds)
    }

    enum Abort {
        /// SIGKILL went to the child; the spawn answers once it has died.
        case killed
        /// Not waiting for an exec (queued, or answered): nothing to do.
        case notWaiting
        /// The child has not run yet (its pidfd may not be installed): ask again shortly.
        case tryAgain
    }

    /// The child's pid once it has run (its first act is to say so), else nil.
    var child: pid_t? {
        let pid = cc_spawn_watch_child(pointer)
        return pid > 0 ? pid : nil
    }

    /// Withdraws a spawn still queued for its spawn thread: true if it will
    /// not clone (its answer then is a failure, and late).
    func withdraw() -> Bool { cc_spawn_withdraw(pointer) == 1 }

    func abort() -> Abort {
        switch cc_spawn_abort(pointer) {
        case 1: .killed
        case 0: .notWaiting
        default: .tryAgain
        }
    }
}
