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
        let events = open(leaf.path + "/cgroup.events", O_RDONLY | O_CLOEXEC)
        guard events >= 0 else { return true }  // e.g. EMFILE: the drain timeout bounds the wait
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
        if delivered { removeLeaf() } else if readyToDeliver { deliver() }
    }

    /// cgroup.kill; records who was in the leaf. True if anything besides
    /// the leader was there. An empty leaf (the leader is gone, or a zombie,
    /// which is not counted) is left alone.
    @discardableResult
    func killCgroup() -> Bool {
        guard let leaf, readPopulated(leaf) else { return false }
        let members = CgroupLeaf.members(leaf.path).filter { $0 != pid }
        for member in members where !killed.contains(where: { $0.pid == member }) {
            killed.append(ProcessSummary(pid: member, command: ProcFiles.command(of: member)))
        }
        CgroupLeaf.kill(leaf.path)
        return !members.isEmpty
    }

    // MARK: both tiers

    /// Before force-closing: who still holds the pipes, and kill those that
    /// belong to the job (unless it leaves them running).
    func recordPipeHolders() {
        let inodes = Set(outputs.filter(\.isOpen).compactMap(\.inode))
        let holders = ProcFiles.pipeHolders(inodes: inodes)
        let kills = spec.lingering == .kill || stopReason != nil
        if kills {
            if containment == .cgroup { killCgroup() }
            sweepEscapees(signal: SIGKILL)
        }
        let members = Set(leaf.map { CgroupLeaf.members($0.path) } ?? [])
        pipeHolders = holders.map { holder in
            let belongs = escapees.contains(holder) || members.contains(holder)
                || killed.contains(where: { $0.pid == holder })
            return PipeHolder(process: ProcessSummary(pid: holder, command: ProcFiles.command(of: holder)),
                              killed: kills && belongs)
        }
    }

    /// At delivery: the job tree's CPU time, and the leaf removed once empty.
    func finishContainment() {
        guard let leaf else { return }
        cpuTime = CgroupLeaf.cpuTime(leaf.path)
        if !leafPopulated() { removeLeaf() }  // else when cgroup.events says it emptied
    }

    func removeLeaf() {
        guard let leaf else { return }
        // Depth first: the job may have made child cgroups (a nested Corral does).
        if !CgroupLeaf.removeTree(leaf.path) {
            // Not empty after all: wait for the next event; if it has just emptied, try once more.
            if watchCgroup(leaf) || !CgroupLeaf.removeTree(leaf.path) { return }
        }
        releaseLeaf()
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
        CgroupLeaf.removeTree(leaf.path)
        self.leaf = nil
    }
}
