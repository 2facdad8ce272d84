import CCorral
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// This runner's cgroup v2 directory, `<base>/corral/runner-<pid>-<random>`,
/// and the job leaves in it. Created at runner start; stale directories of
/// runners that died are emptied and removed then.
///
/// A runner holds an exclusive `flock` on its directory for its whole life
/// (the descriptor is close-on-exec, and the watchdog closes its copy at
/// once), so "its runner is dead" is a lock anyone can take: that holds
/// across pid namespaces sharing the hierarchy, where a pid does not.
final class CgroupTree: Sendable {
    /// `<base>/corral`: every runner's directory, and `daemons` for
    /// processes a `.leaveRunning` job left behind.
    let root: String
    let directory: String
    var daemons: String { root + "/daemons" }
    /// The directory, open and locked (LOCK_EX) while the runner lives; -1 once released.
    private let lock: Atomic<Int32>

    private init(root: String, directory: String, lock: Int32) {
        self.root = root
        self.directory = directory
        self.lock = Atomic(lock)
    }

    /// Sets the tree up as `setting` asks; nil (with the reason) when the
    /// process-group tier must serve instead.
    static func setUp(_ setting: ContainmentSetting) -> (CgroupTree?, ContainmentReport) {
        let base: String
        switch setting.choice {
        case .processGroup:
            return (nil, ContainmentReport(tier: .processGroup, directory: nil, note: nil))
        case .cgroup(let directory):
            base = directory
        case .automatic:
            guard let found = ownCgroupDirectory() else {
                return (nil, ContainmentReport(tier: .processGroup, directory: nil,
                                               note: "no cgroup v2 hierarchy is mounted; using process groups"))
            }
            base = found
        }
        func fallBack(_ reason: String) -> (CgroupTree?, ContainmentReport) {
            (nil, ContainmentReport(tier: .processGroup, directory: nil,
                                    note: "cgroup v2 containment unavailable at \(base): \(reason); using process groups"))
        }
        let kind = cc_is_cgroup2(base)
        guard kind >= 0 else { return fallBack(Errno(code: -kind).description) }
        guard kind == 1 else { return fallBack("not a cgroup v2 directory") }
        let root = base.hasSuffix("/") ? base + "corral" : base + "/corral"
        for path in [root, root + "/daemons"] {
            if let error = Syscalls.mkdir(path, 0o755), error.code != EEXIST {
                return fallBack("cannot create \(path): \(error)")
            }
        }
        guard access(root + "/cgroup.procs", W_OK) == 0 else {
            return fallBack("\(root)/cgroup.procs is not writable (delegate the cgroup, e.g. systemd Delegate=yes)")
        }
        // Cleaning and creating under the root's lock: a cleaner never sees
        // a new directory before its runner has locked it.
        let rootLock = lockDirectory(root, waitingUpTo: .seconds(2))
        defer { if rootLock >= 0 { Syscalls.close(rootLock) } }
        removeStale(in: root)
        let directory = root + "/runner-\(getpid())-\(String(UInt64.random(in: 1..<(1 << 40)), radix: 36))"
        if let error = Syscalls.mkdir(directory, 0o755) {
            return fallBack("cannot create \(directory): \(error)")
        }
        let lock = lockDirectory(directory, waitingUpTo: .zero)
        guard lock >= 0 else {
            let error = Errno.current
            _ = Syscalls.rmdir(directory)
            return fallBack("cannot lock \(directory): \(error)")
        }
        var report = ContainmentReport(tier: .cgroup, directory: directory, note: nil)
        report.nsdelegate = mountOptions(of: base)?.contains("nsdelegate") ?? false
        return (CgroupTree(root: root, directory: directory, lock: lock), report)
    }

    /// Opens a directory and takes an exclusive flock on it, retrying for
    /// up to `limit`; the descriptor (close-on-exec), or -1.
    private static func lockDirectory(_ path: String, waitingUpTo limit: Duration) -> Int32 {
        guard case .success(let fd) = Syscalls.open(path, O_RDONLY | O_DIRECTORY) else { return -1 }
        let deadline = MonotonicInstant.now() + limit
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, MonotonicInstant.now() < deadline else {
                let error = errno
                Syscalls.close(fd)
                errno = error
                return -1
            }
            usleep(2_000)
        }
        return fd
    }

    /// The super options of the cgroup2 mount holding `path` (from
    /// /proc/self/mountinfo), e.g. `rw,nsdelegate`.
    static func mountOptions(of path: String) -> [Substring]? {
        guard let mountinfo = ProcFiles.read("/proc/self/mountinfo") else { return nil }
        var best: (mount: String, options: [Substring])?
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count > 4, tail.count > 2 else { continue }
            let mount = String(fields[4])
            guard path == mount || path.hasPrefix(mount.hasSuffix("/") ? mount : mount + "/"),
                  mount.count >= (best?.mount.count ?? 0) else { continue }
            best = (mount, tail[2].split(separator: ","))
        }
        return best?.options
    }

    /// Where this process sits in the cgroup v2 hierarchy.
    static func ownCgroupDirectory() -> String? {
        guard let mountinfo = ProcFiles.read("/proc/self/mountinfo"),
              let own = ProcFiles.read("/proc/self/cgroup")?.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
        else { return nil }
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count > 4 else { continue }
            let mount = String(fields[4])
            let path = own.dropFirst(3)
            return path == "/" ? mount : mount + path
        }
        return nil
    }

    /// A new leaf's directory, made on the cgroup thread ahead of need
    /// (`mkdir` in cgroupfs waits for the kernel's cgroup lock).
    func makeLeaf(_ name: String) -> Result<String, Errno> {
        assertNotOnLoopThread()
        let path = directory + "/" + name
        if let error = Syscalls.mkdir(path, 0o755) { return .failure(error) }
        return .success(path)
    }

    /// Removes this runner's directory, killing what is left in it, and
    /// releases its lock; at shutdown.
    func removeDirectory() {
        CgroupLeaf.killAndRemove(directory)
        let fd = lock.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { Syscalls.close(fd) }
    }

    /// Empties and removes the directories of runners that are gone: those
    /// whose lock can be taken (a live runner holds its own). Directories
    /// named `r<pid>-…`, of runners that predate the lock, are left to them:
    /// telling whether one is alive would take a pid, which means nothing
    /// in another pid namespace. Empty `.leaveRunning` cgroups under
    /// `daemons` are removed too.
    private static func removeStale(in root: String) {
        var stale: [String] = []
        var locks: [Int32] = []
        for name in ProcFiles.subdirectories(root) where name.hasPrefix("runner-") {
            let fd = lockDirectory(root + "/" + name, waitingUpTo: .zero)
            guard fd >= 0 else { continue }  // alive (or already gone)
            locks.append(fd)
            stale.append(root + "/" + name)
        }
        CgroupLeaf.killAndRemove(stale)
        locks.forEach(Syscalls.close)
        for name in ProcFiles.subdirectories(root + "/daemons") {
            CgroupLeaf.removeTree(root + "/daemons/" + name)  // fails while anything runs in it
        }
    }
}

/// One job's cgroup.
struct CgroupLeaf: Sendable {
    let path: String
    let procsFD: Int32

    /// A made leaf with its `cgroup.procs` open for the child to join (close
    /// it after the spawn). At spawn, so no descriptor is held for a queued job.
    static func open(_ path: String) -> Result<CgroupLeaf, Errno> {
        Syscalls.open(path + "/cgroup.procs", O_WRONLY).map { CgroupLeaf(path: path, procsFD: $0) }
    }

    /// Whether any process is in it, from `cgroup.events` (one `pread`: the
    /// file is a few short lines, and reading it re-arms its EPOLLPRI).
    static func populated(eventsFD: Int32) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer in
            guard case .success(let count) = Syscalls.pread(eventsFD, UnsafeMutableRawBufferPointer(buffer), at: 0),
                  count > 0 else { return false }
            var lineStart = 0
            for index in 0...count where index == count || buffer[index] == UInt8(ascii: "\n") {
                if buffer[lineStart..<index].elementsEqual(populatedLine) { return true }
                lineStart = index + 1
            }
            return false
        }
    }

    private static let populatedLine = Array("populated 1".utf8)

    /// The pids in it now.
    static func members(_ path: String) -> [pid_t] {
        (ProcFiles.read(path + "/cgroup.procs") ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// SIGKILL to every process in it, including any being forked.
    @discardableResult
    static func kill(_ path: String) -> Bool {
        ProcFiles.write("1", to: path + "/cgroup.kill") == nil
    }

    /// CPU time of everything that ever ran in it.
    static func cpuTime(_ path: String) -> Duration? {
        assertNotOnLoopThread()
        guard let stat = ProcFiles.read(path + "/cpu.stat"),
              let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("usage_usec ") }),
              let micros = Int64(line.dropFirst("usage_usec ".count)) else { return nil }
        return .microseconds(micros)
    }

    /// Moves processes to another cgroup (for `.leaveRunning` daemons).
    static func move(_ pids: [pid_t], to destination: String) {
        assertNotOnLoopThread()
        for pid in pids { _ = ProcFiles.write(String(pid), to: destination + "/cgroup.procs") }
    }

    /// Kills everything in these cgroups and their descendants (a job may
    /// have made child cgroups: a Corral running inside a Corral job does),
    /// waits a bounded time for them to empty, and removes them depth first.
    /// What cannot be removed yet (a process stuck in the kernel) is left
    /// for the next runner's stale cleanup.
    static func killAndRemove(_ paths: [String], waitingUpTo limit: Duration = .milliseconds(500)) {
        assertNotOnLoopThread()
        for path in paths { kill(path) }
        let deadline = MonotonicInstant.now() + limit
        for path in paths {
            while isPopulated(path), MonotonicInstant.now() < deadline { usleep(2_000) }
            removeTree(path)
        }
    }

    static func killAndRemove(_ path: String) { killAndRemove([path]) }

    /// Removes a cgroup and its (empty) descendants, depth first. A leaf
    /// with no child cgroups (the usual case) costs one `rmdir`.
    @discardableResult
    static func removeTree(_ path: String) -> Bool {
        assertNotOnLoopThread()
        guard let error = Syscalls.rmdir(path), error.code != ENOENT else { return true }
        guard error.code == EBUSY || error.code == ENOTEMPTY else { return false }
        let children = ProcFiles.subdirectories(path)
        guard !children.isEmpty else { return false }  // busy with processes, not cgroups
        for child in children { removeTree(path + "/" + child) }
        let again = Syscalls.rmdir(path)
        return again == nil || again?.code == ENOENT
    }

    static func isPopulated(_ path: String) -> Bool {
        guard case .success(let events) = Syscalls.open(path + "/cgroup.events", O_RDONLY) else { return false }
        defer { Syscalls.close(events) }
        return populated(eventsFD: events)
    }
}
