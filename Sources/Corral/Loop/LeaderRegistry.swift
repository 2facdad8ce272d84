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
        /// The reaper is waiting for the spawns under way: new ones wait
        /// for its pass (on their spawn thread), so a steady stream of
        /// spawns cannot put its passes off for ever.
        var reaperWaiting = false
    }

    private static let state = Locked(State())

    /// Runs `spawn` (off the loop) and registers the pid it returns.
    static func spawn<Failure: Error>(_ spawn: () -> Result<Spawner.Spawned, Failure>) -> Result<Spawner.Spawned, Failure> {
        // Off the loop: waiting here is allowed, and bounded by the
        // reaper's next pass (a few milliseconds after the spawns under way).
        while !state.withLock({ state in
            guard !state.reaperWaiting else { return false }
            state.spawning += 1
            return true
        }) { usleep(500) }
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

    /// Runs `reap` (a non-blocking waitid) under the lock and, if it
    /// reaped, forgets the leader in the same hold.
    static func reap(_ pid: pid_t, _ reap: () -> Bool) -> Bool {
        state.withLock { state in
            guard reap() else { return false }
            state.leaders.remove(pid)
            return true
        }
    }

    /// Calls `body` with the registered leaders, under the lock; nil (and
    /// `body` not called) while a spawn is under way, and then no new spawn
    /// starts until the next call (the reaper retries within milliseconds).
    static func withLeaders<T>(_ body: (Set<pid_t>) -> T) -> T? {
        state.withLock { state in
            guard state.spawning == 0 else {
                state.reaperWaiting = true
                return nil
            }
            state.reaperWaiting = false
            return body(state.leaders)
        }
    }

    /// The reaper stopped (its runner is closing): spawns need not wait for it.
    static func reaperGaveUp() {
        state.withLock { $0.reaperWaiting = false }
    }
}
