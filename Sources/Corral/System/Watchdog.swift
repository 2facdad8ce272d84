import CCorral
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The runner's watchdog process: when the process hosting the runner dies
/// without shutting it down (SIGKILL, the OOM killer, an exit or exec that
/// skipped `shutdown()`), it kills every process of the runner's unfinished
/// jobs — `cgroup.kill` on the runner's cgroup directory, SIGKILL to each
/// job's process group, and sweeps of /proc for their `CORRAL_JOB_ID` —
/// then removes the cgroup directory and exits. After an orderly shutdown
/// it exits without touching anything. The child side is C
/// (`Sources/CCorral/watchdog.c`), which says why it is a plain fork.
///
/// The runner tells it which jobs are live through a table in memory shared
/// with it: one slot per job in flight, written by the loop thread with
/// plain atomic stores, so telling it never blocks the loop.
final class Watchdog: @unchecked Sendable {
    let pid: pid_t
    private let pidfd: Int32
    private let control: Int32
    private let slots: UnsafeMutablePointer<cc_watchdog_slot>
    private let capacity: Int
    /// Loop thread only: the slots not in use, lowest on top (so the pages
    /// touched stay few).
    private var freeSlots: [Int32]
    private let stopped = Atomic<Bool>(false)

    /// Forks the watchdog.
    ///
    /// - Parameters:
    ///   - cgroupDirectory: the runner's directory (cgroup tier), or nil.
    ///   - jobIDPrefix: what every `CORRAL_JOB_ID` of the runner starts with, up to the number.
    ///   - capacity: the most jobs in flight at once; jobs beyond it are not
    ///     tracked (in the cgroup tier the directory still covers them).
    static func start(cgroupDirectory: String?, jobIDPrefix: String, capacity: Int) -> Result<Watchdog, Errno> {
        let count = min(max(capacity, 1), 1 << 20)
        let bytes = count * MemoryLayout<cc_watchdog_slot>.stride
        let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { return .failure(Errno.current) }
        let slots = mapped.bindMemory(to: cc_watchdog_slot.self, capacity: count)  // zero-filled
        var started = cc_watchdog()
        let status = jobIDPrefix.withCString { prefix in
            withOptionalCString(cgroupDirectory) { directory in
                var request = cc_watchdog_request(cgroup_directory: directory, job_id_prefix: prefix,
                                                  slots: slots, slot_count: count)
                return cc_watchdog_start(&request, &started)
            }
        }
        guard status == 0 else {
            munmap(mapped, bytes)
            return .failure(Errno(code: -status))
        }
        return .success(Watchdog(pid: started.pid, pidfd: started.pidfd, control: started.control,
                                 slots: slots, capacity: count))
    }

    private init(pid: pid_t, pidfd: Int32, control: Int32, slots: UnsafeMutablePointer<cc_watchdog_slot>, capacity: Int) {
        self.pid = pid
        self.pidfd = pidfd
        self.control = control
        self.slots = slots
        self.capacity = capacity
        freeSlots = (0..<Int32(capacity)).reversed()
    }

    /// A job is about to be spawned: its job id's number, so its processes
    /// are swept for from the moment its child can run (the loop hears of
    /// the spawn later; a job started meanwhile may already have forked).
    /// Loop thread only. Returns the slot, nil if the table is full.
    func track(sequence: UInt64) -> Int32? {
        guard let slot = freeSlots.popLast() else { return nil }
        cc_watchdog_set_slot(slots, Int(slot), 0, sequence)
        return slot
    }

    /// The job's leader was spawned: its group is killed too. Loop thread only.
    func setGroup(_ slot: Int32, _ group: pid_t) {
        cc_watchdog_set_group(slots, Int(slot), group)
    }

    /// The leader is about to be reaped: its group id will no longer be
    /// pinned, so the watchdog must not signal it. Loop thread only.
    func forgetGroup(_ slot: Int32) {
        cc_watchdog_set_group(slots, Int(slot), 0)
    }

    /// The job is over (or what it leaves is meant to keep running). Loop thread only.
    func release(_ slot: Int32) {
        cc_watchdog_set_slot(slots, Int(slot), 0, 0)
        freeSlots.append(slot)
    }

    /// Orderly stop, once every job is over: says goodbye, so the watchdog
    /// exits without killing anything, and reaps it (waiting at most a
    /// second; it exits at once). Safe to call more than once.
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var goodbye = UInt8(ascii: "q")
        while write(control, &goodbye, 1) < 0, errno == EINTR {}
        Syscalls.close(control)
        var ready = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        for _ in 0..<10 where poll(&ready, 1, 1000) < 0 && errno == EINTR {}
        var info = cc_exit_info()
        _ = cc_wait_pidfd(pidfd, cc_WEXITED | cc_WNOHANG, &info)
        Syscalls.close(pidfd)
        munmap(slots, capacity * MemoryLayout<cc_watchdog_slot>.stride)
    }
}

private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
