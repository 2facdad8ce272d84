import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every live job leader of every runner in this process. The orphan reaper
/// must never reap a leader (that is the pidfd's job) and cannot tell one
/// from an adopted orphan by the kernel's view alone: after exec, every
/// child reports with SIGCHLD. Spawning and registering happen under one
/// lock, and the reaper decides under the same lock, so no leader is ever
/// seen unregistered.
enum LeaderRegistry {
    private static let leaders = Locked<Set<pid_t>>([])

    /// Runs `spawn` under the lock and registers the pid it returns.
    static func spawn<Failure: Error>(_ spawn: () -> Result<Spawner.Spawned, Failure>) -> Result<Spawner.Spawned, Failure> {
        leaders.withLock { leaders in
            let result = spawn()
            if case .success(let child) = result { leaders.insert(child.pid) }
            return result
        }
    }

    /// Forgets a leader once it has been reaped.
    static func remove(_ pid: pid_t) {
        _ = leaders.withLock { $0.remove(pid) }
    }

    /// Calls `body` with the registered leaders, under the lock.
    static func withLeaders<T>(_ body: (Set<pid_t>) -> T) -> T {
        leaders.withLock { body($0) }
    }
}
