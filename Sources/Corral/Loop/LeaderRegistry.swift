#if canImport(Glibc)
import Glibc
#endif

/// Every live job leader of every runner in this process. The orphan reaper
/// must never reap a leader (that is the pidfd's job) and cannot tell one
/// from an adopted orphan by the kernel's view alone: after exec, every
/// child reports with SIGCHLD.
///
/// Spawns run on spawn threads and may take long (a `vfork` waits for the
/// child to be scheduled), so the lock is not held across one: a spawn is
/// announced first, its leader registered after, and the reaper skips its
/// pass while any spawn is announced and unregistered (a child born in
/// that window cannot be told from an orphan yet). The lock is only ever
/// held for bookkeeping, so the loop never waits on it long.
enum LeaderRegistry {
    private struct State {
        var leaders: Set<pid_t> = []
        var spawning = 0
    }

    private static let state = Locked(State())

    /// Runs `spawn` (off the loop) and registers the pid it returns.
    static func spawn<Failure: Error>(_ spawn: () -> Result<Spawner.Spawned, Failure>) -> Result<Spawner.Spawned, Failure> {
        state.withLock { $0.spawning += 1 }
        let result = spawn()
        state.withLock { state in
            if case .success(let child) = result { state.leaders.insert(child.pid) }
            state.spawning -= 1
        }
        return result
    }

    /// Forgets a leader once it has been reaped.
    static func remove(_ pid: pid_t) {
        _ = state.withLock { $0.leaders.remove(pid) }
    }

    /// Calls `body` with the registered leaders, under the lock; nil (and
    /// `body` not called) while a spawn is under way.
    static func withLeaders<T>(_ body: (Set<pid_t>) -> T) -> T? {
        state.withLock { state in state.spawning > 0 ? nil : body(state.leaders) }
    }
}
