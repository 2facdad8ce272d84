import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// The marker sweep, in both tiers: every process of a job carries its id
/// (`CORRAL_JOB_ID`, and in `CORRAL_JOB_IDS`, which a nested Corral keeps),
/// which survives setsid, double forks and a move out of the cgroup leaf.
/// It is the process-group tier's fence and the cgroup tier's backstop.
extension LoopJob {
    /// SIGKILL to the group and to whatever contains the rest: the cgroup,
    /// and (both tiers: a root job can leave its leaf) the escapees found by
    /// the sweep. True if anything besides the group was there.
    @discardableResult
    func killEverything() -> Bool {
        signalGroup(SIGKILL)
        let contained = containment == .cgroup && killCgroup()
        return sweepEscapees(signal: SIGKILL) || contained
    }

    /// Finds processes that carry the job's id outside its still-signalled
    /// group, and signals each through a pidfd, opened before the signal and
    /// checked again after, so a recycled pid is never hit. True if it
    /// signalled any it had not signalled before.
    @discardableResult
    func sweepEscapees(signal: Int32) -> Bool {
        var foundNew = false
        let snapshot = scheduler.processSnapshot(rescan: sweepInconclusive)
        // A process seen mid-exec (environment empty) for the first time may
        // be one of ours: the pass is not conclusive, look again.
        sweepInconclusive = !snapshot.unreadable.isSubset(of: sweepUnreadable)
        sweepUnreadable = snapshot.unreadable
        for candidate in snapshot.byJob[id.rawValue] ?? [] where candidate.pid != pid {
            // Members of its own group got the group's signal (unless someone
            // else reaped the leader: then no group signal was sent).
            if candidate.group == pid, !leaderVanished { continue }
            let pidfd = cc_pidfd_open(candidate.pid)
            guard pidfd >= 0 else { continue }  // gone since the snapshot
            defer { Syscalls.close(pidfd) }
            // Pinned now: is it still the process the snapshot saw?
            guard ProcFiles.carries(candidate.pid, jobID: id.rawValue, buffer: scheduler.readBuffer) else {
                sweepInconclusive = true  // alive but unreadable for now (an exec): look again
                continue
            }
            if escapees.insert(candidate.pid).inserted {
                foundNew = true
                // Named before the signal: once dead, it has no name to read.
                killed.append(ProcessSummary(pid: candidate.pid, command: ProcFiles.command(of: candidate.pid)))
            }
            _ = cc_pidfd_send_signal(pidfd, signal)
            if signal != SIGKILL { _ = cc_pidfd_send_signal(pidfd, SIGCONT) }
        }
        return foundNew
    }

    /// Whether what the leader leaves is kept (`.leaveRunning`, not stopped).
    var keepsDaemons: Bool { spec.lingering == .leaveRunning && stopReason == nil }

    /// One pass of the repeated sweep (`EscapeeSweeper`): kill (or, when
    /// kept, list) what carries the job's id. Returns whether another pass
    /// is needed; once none is, delivers if all else is done.
    func sweepPass() -> Bool {
        sweepPasses += 1
        if keepsDaemons {
            // Listing, not killing: what it left may still be forking. Done
            // once nothing new has appeared for a while (the drain timeout
            // bounds the result; passes go on until then if need be).
            if keepPass() { lastNewKept = .now() }
            if MonotonicInstant.now() - lastNewKept < LoopJob.keptQuietPeriod { return true }
        } else {
            let killedNew = sweepEscapees(signal: SIGKILL)
            if killedNew { lingeringKilled = true }
            if killedNew || sweepInconclusive, sweepPasses < EscapeeSweeper.passLimit { return true }
        }
        sweepPending = false
        if keepsDaemons { listKept() }
        if !delivered, readyToDeliver { deliver() }
        return false
    }

    // MARK: .leaveRunning

    /// What the leader left behind keeps running, counted exactly and listed
    /// (up to `leftRunningListLimit`). In the cgroup tier it moves out of the
    /// job's leaf to a cgroup of the job's own under `corral/daemons`, pass
    /// after pass until the leaf is empty (a forking daemon's children are
    /// born where it is); in the process-group tier it is found by the job's
    /// id, pass after pass until a scan finds nothing new. Nothing of it is
    /// signalled.
    func keepDaemons() {
        lastNewKept = .now()
        _ = keepPass()
        scheduler.sweeper.request(self)
    }

    /// How long no new process must appear before what a job left is
    /// counted: a daemon still forking makes new ones every few milliseconds.
    static let keptQuietPeriod = Duration.milliseconds(250)

    /// One pass of keeping; true if it found (or moved) anything new.
    func keepPass() -> Bool {
        if containment == .cgroup, let leaf, let tree = scheduler.configuration.cgroupTree {
            if keptCgroup == nil {
                let path = tree.daemons + "/" + id.rawValue
                keptCgroup = mkdir(path, 0o755) == 0 || errno == EEXIST ? path : tree.daemons
            }
            // Out of the leaf (its children are then born where it went)...
            let members = CgroupLeaf.members(leaf.path).filter { $0 != pid }
            CgroupLeaf.move(members, to: keptCgroup!)
            // ...and watched there until it stops forking.
            var foundNew = !members.isEmpty
            if keptCgroup != tree.daemons {
                for member in CgroupLeaf.members(keptCgroup!) where kept.insert(member).inserted { foundNew = true }
            }
            kept.formUnion(members)
            return foundNew
        }
        let seen = (scheduler.processSnapshot().byJob[id.rawValue] ?? []).map(\.pid).filter { $0 != pid }
        lastSeenKept = seen
        var foundNew = false
        for candidate in seen where kept.insert(candidate).inserted { foundNew = true }
        return foundNew
    }

    /// The count and list of what was left, as it is now: the job's daemon
    /// cgroup's members (cgroup tier), or the last scan's (process-group tier).
    func listKept() {
        var survivors: [pid_t]
        if let keptCgroup {
            let shared = keptCgroup == scheduler.configuration.cgroupTree?.daemons
            survivors = CgroupLeaf.members(keptCgroup).filter { !shared || kept.contains($0) }
        } else {
            survivors = lastSeenKept
        }
        survivors.sort()
        leftRunningCount = survivors.count
        leftRunning = survivors.prefix(LoopJob.leftRunningListLimit).map {
            ProcessSummary(pid: $0, command: ProcFiles.command(of: $0))
        }
    }

    /// The most processes a result names in `leftRunning` (it counts them all).
    static let leftRunningListLimit = 1000
}
