import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// What keeps a job's processes from outliving it: its cgroup leaf (cgroup
/// tier); the marker sweep, in both tiers, is in LoopJob+Sweep.swift.
extension LoopJob {
    // MARK: cgroup tier

    /// Whether anything is still in the leaf, read from cgroup.events. While
    /// something is, the file is kept open and watched (EPOLLPRI on change),
    /// so "every process is gone" is observed, never polled for. Most
    /// leaves are empty when first asked: they are never watched, and a
    /// running job holds no descriptor for its leaf (every descriptor this
    /// process holds is copied into, then closed by, every spawn).
    func leafPopulated() -> Bool {
        guard let leaf, readPopulated(leaf) else { return false }
        return watchCgroup(leaf)
    }

    /// Reads `populated` (through the watched descriptor if there is one).
    /// Empty is final: nothing is left in the leaf that could fork into it.
    private func readPopulated(_ leaf: CgroupLeaf) -> Bool {
        if leafEmpty { return false }
        let populated = cgroupWatch != nil
            ? CgroupLeaf.populated(eventsFD: leafEvents) : CgroupLeaf.isPopulated(leaf.path)
        leafEmpty = !populated
        return populated
    }

    /// Watches the leaf's cgroup.events until the leaf is removed; false if
    /// it turned out empty after all. Read once more through the watched
    /// descriptor, so a change just before the watch began is not missed
    /// (any later one raises EPOLLPRI).
    @discardableResult
    private func watchCgroup(_ leaf: CgroupLeaf) -> Bool {
        guard cgroupWatch == nil else { return true }
        guard case .success(let events) = Syscalls.open(leaf.path + "/cgroup.events", O_RDONLY) else {
            return true  // e.g. EMFILE: the drain timeout bounds the wait
        }
        guard CgroupLeaf.populated(eventsFD: events) else {
            Syscalls.close(events)
            leafEmpty = true
            return false
        }
        leafEvents = events
        let watch = UVHandle.allocate(UV_POLL, as: uv_poll_t.self, owner: self)
        cgroupWatch = watch
        openHandles += 1
        uv_poll_init(scheduler.loop, watch, events)
        uv_poll_start(watch, Int32(UV_PRIORITIZED.rawValue)) { handle, _, _ in
            unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: LoopJob.self).cgroupChanged()
        }
        return true
    }

    private func cgroupChanged() {
        guard let leaf, !readPopulated(leaf) else { return }
        if delivered { removeLeaf() } else { drainProgressed() }
    }

    /// cgroup.kill; records who was in the leaf. True if anything besides
    /// the leader was there. An empty leaf (the leader is gone, or a zombie,
    /// which is not counted) is left alone.
    static let namedKillLimit = 64

    @discardableResult
    func killCgroup() -> Bool {
        guard let leaf, readPopulated(leaf) else { return false }
        let members = CgroupLeaf.members(leaf.path).filter { $0 != pid }
        // Names are read before the kill (a dead process has none), for at
        // most `namedKillLimit` processes a call: a fork bomb's thousands
        // are listed by pid, so the loop's work stays bounded.
        var named = 0
        for member in members where killedPIDs.insert(member).inserted {
            let command = named < LoopJob.namedKillLimit ? ProcFiles.command(of: member) : "?"
            named += 1
            killed.append(ProcessSummary(pid: member, command: command))
        }
        CgroupLeaf.kill(leaf.path)
        return !members.isEmpty
    }

    /// The leaf has emptied after delivery: forgotten here, removed (depth
    /// first: the job may have made child cgroups, as a nested Corral does)
    /// on the cgroup thread.
    func removeLeaf() {
        guard let leaf else { return }
        releaseLeaf()
        scheduler.removeCgroup(leaf.path)
    }

    /// Forgets the leaf: its watch is closed (and cgroup.events with it).
    func releaseLeaf() {
        guard leaf != nil else { return }
        leaf = nil
        guard let cgroupWatch else { return }
        self.cgroupWatch = nil
        closingCgroupWatch = (UnsafeMutableRawPointer(cgroupWatch), leafEvents)
        leafEvents = -1
        UVHandle.close(cgroupWatch)  // handleDidClose closes the file
    }

    /// The spawn failed or never happened: the leaf was never used
    /// (`cgroup.procs` is closed by whoever held it).
    func discardLeaf() {
        guard let leaf else { return }
        self.leaf = nil
        scheduler.removeCgroup(leaf.path)
    }
}

/// What a result still needs from /proc and cgroupfs when delivery begins,
/// found on the inspector.
struct FinishOrder: Sendable {
    let id: JobID
    /// The force-closed pipes (empty if every pipe reached end-of-file).
    let inodes: Set<UInt64>
    /// Whether what belongs to the job among the pipe holders is killed.
    let kills: Bool
    let leaf: String?
    /// The leaf is empty for good: its cpu.stat is read, and the loop has it
    /// removed once the answer is in (`JobScheduler.sendFinishOrders`).
    let removeLeaf: Bool
    let listing: KeptListing?

    var needsInspection: Bool { !inodes.isEmpty || leaf != nil || listing != nil }

    /// Runs a batch on the inspector: one walk of the host's descriptors
    /// for every force-closed pipe of the batch. Each holder that belongs
    /// to its job (carries its id, or is in its leaf) and is to be killed
    /// gets a pidfd, opened before it is checked again, for the loop to
    /// signal through.
    static func run(_ orders: [FinishOrder], scanner: SweepScanner) -> [FinishAnswer] {
        assertNotOnLoopThread()
        let holdersByPipe = ProcFiles.pipeHolders(inodes: orders.reduce(into: Set<UInt64>()) { $0.formUnion($1.inodes) })
        return orders.map { order in order.run(holders: holdersByPipe, scanner: scanner) }
    }

    private func run(holders holdersByPipe: [UInt64: [pid_t]], scanner: SweepScanner) -> FinishAnswer {
        var answer = FinishAnswer(id: id)
        var holders: [pid_t] = []
        for inode in inodes {
            for holder in holdersByPipe[inode] ?? [] where !holders.contains(holder) { holders.append(holder) }
        }
        if !holders.isEmpty {
            let members = Set(leaf.map(CgroupLeaf.members) ?? [])
            var pidfds = 0
            for holder in holders.sorted() {
                var finding = FinishAnswer.Holder(
                    pid: holder, command: ProcFiles.command(of: holder),
                    belongs: members.contains(holder) || scanner.carries(holder, jobID: id.rawValue), pidfd: -1)
                // Members of the leaf die by cgroup.kill (`handOver`): no
                // pidfd for them, and at most `pidfdLimit` for the rest, so a
                // fork bomb holding the pipe cannot use up the host's descriptors
                // (the marker sweep kills whatever carries the id past that).
                if kills, finding.belongs, !members.contains(holder), pidfds < EscapeeSweeper.pidfdLimit {
                    let pidfd = cc_pidfd_open(holder)
                    // Pinned: still ours (not a recycled pid)?
                    if pidfd >= 0, scanner.carries(holder, jobID: id.rawValue) {
                        finding.pidfd = pidfd
                        pidfds += 1
                    } else if pidfd >= 0 {
                        Syscalls.close(pidfd)
                    }
                }
                answer.holders.append(finding)
            }
        }
        if let leaf {
            answer.cpuTime = CgroupLeaf.cpuTime(leaf)
        }
        answer.listing = listing?.run()
        return answer
    }
}

struct FinishAnswer: Sendable {
    let id: JobID

    struct Holder: Sendable {
        let pid: pid_t
        let command: String
        let belongs: Bool
        /// Open if the loop is to SIGKILL it (then closes it); else -1.
        var pidfd: Int32
    }

    var holders: [Holder] = []
    var cpuTime: Duration?
    var listing: KeptListing.List?

    init(id: JobID) { self.id = id }
}
