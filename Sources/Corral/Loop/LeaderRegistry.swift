#if canImport(Glibc)
import Glibc
#endif

/// Every live job leader of every runner in this process. The orphan reaper
/// must never reap a leader (that is the pidfd's job) and cannot tell one
/// from an adopted orphan by the kernel's view alone: after exec, every
/// child reports with SIGCHLD.
///
/// Spawns run on spawn threads and may take long (a `vfork` waits for the
/// child to be scheduled, and a child stuck before its exec holds it until
/// it is killed), so the lock is not held across one: a spawn is announced
/// first, its leader registered after. Meanwhile the child names itself in
/// its `SpawnWatch` as its first act, and the reaper leaves those pids
/// alone; it skips its pass only while an announced spawn's child has not
/// run yet (a child born in that window cannot be told from an orphan) —
/// never for long, and not for a child stuck later on. The lock is only
/// ever held for bookkeeping, so the loop never waits on it long.
enum LeaderRegistry {
    private struct State {
        var leaders: Set<pid_t> = []
        /// Announced spawns, by token: their watch (nil: none could be made,
        /// so its child is unknown until registered).
        var spawning: [UInt64: SpawnWatch?] = [:]
        var nextToken: UInt64 = 0
        /// The reaper is waiting for the spawns under way: new ones wait
        /// for its pass (on their spawn thread), so a steady stream of
        /// spawns cannot put its passes off for ever.
        var reaperWaiting = false
    }

    private static let state = Locked(State())

    /// Runs `spawn` (off the loop) and registers the pid it returns.
    static func spawn<Failure: Error>(watch: SpawnWatch?,
                                      _ spawn: () -> Result<Spawner.Spawned, Failure>) -> Result<Spawner.Spawned, Failure> {
        // Off the loop: waiting here is allowed, and bounded by the
        // reaper's next pass (a few milliseconds after the spawns under way).
        var token: UInt64 = 0
        while !state.withLock({ state in
            guard !state.reaperWaiting else { return false }
            token = state.nextToken
            state.nextToken += 1
            state.spawning[token] = .some(watch)
            return true
        }) { usleep(500) }
        let result = spawn()
        state.withLock { state in
            if case .success(let child) = result { state.leaders.insert(child.pid) }
            state.spawning[token] = nil
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

    /// Calls `body` with the registered leaders and the children of the
    /// spawns under way, under the lock; nil (and `body` not called) while
    /// a spawn's child has not run yet, and then no new spawn starts until
    /// the next call (the reaper retries within milliseconds).
    static func withLeaders<T>(_ body: (Set<pid_t>) -> T) -> T? {
        state.withLock { state in
            var spared = state.leaders
            for watch in state.spawning.values {
                guard let child = watch?.child else {  // not run yet: cannot be told from an orphan
                    state.reaperWaiting = true
                    return nil
                }
                spared.insert(child)
            }
            state.reaperWaiting = false
            return body(spared)
        }
    }

    /// The registered leaders and the children of the spawns under way
    /// that have run: the sweep's scan skips them (`ProcessSnapshot.take`).
    static func leadersAndSpawning() -> Set<pid_t> {
        state.withLock { state in
            var pids = state.leaders
            for watch in state.spawning.values { if let child = watch?.child { pids.insert(child) } }
            return pids
        }
    }

    /// The reaper stopped (its runner is closing): spawns need not wait for it.
    static func reaperGaveUp() {
        state.withLock { $0.reaperWaiting = false }
    }
}
