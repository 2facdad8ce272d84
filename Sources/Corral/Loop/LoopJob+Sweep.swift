import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// The marker sweep, in both tiers: every process of a job carries its id
/// (`CORRAL_JOB_ID`, and in `CORRAL_JOB_IDS`, which a nested Corral keeps),
/// which survives setsid, double forks and a move out of the cgroup leaf.
/// It is the process-group tier's fence and the cgroup tier's backstop.
extension LoopJob {
    /// SIGKILL to the group and to the cgroup, at once; what left both is
    /// found by the sweep (on the inspector) and killed when it answers.
    func killEverything() {
        signalGroup(SIGKILL)
        hurryDeath()
        if containment == .cgroup { killCgroup() }
        scheduler.sweeper.request(self)
    }

    /// Whether what the leader leaves is kept (`.leaveRunning`, not stopped).
    var keepsDaemons: Bool { spec.lingering == .leaveRunning && stopReason == nil }

    /// This job's order in the next sweep batch.
    func sweepOrder(signal: Int32, repeating: Bool) -> SweepOrder {
        var work = SweepOrder.Work.signal(signal, repeating: repeating)
        if repeating, keepsDaemons {
            if containment == .cgroup, let leaf, let tree = scheduler.configuration.cgroupTree {
                work = .keepInCgroup(leaf: leaf.path, keptCgroup: keptCgroup, daemons: tree.daemons)
            } else {
                work = .listMarked
            }
        }
        // Members of its own group got the group's signal (unless someone
        // else reaped the leader: then no group signal was sent).
        return SweepOrder(id: id, leader: pid, skipGroup: leaderVanished ? nil : pid, known: escapees,
                          work: work, rescan: sweepInconclusive)
    }

    /// What the inspector found for this job: signals it (through the
    /// pidfds it opened) and records it. Returns whether another pass is
    /// needed; once none is, delivers if all else is done.
    func apply(_ answer: SweepAnswer) -> Bool {
        switch answer.work {
        case .signal(let signal, let repeating):
            var foundNew = false
            for finding in answer.findings {
                if escapees.insert(finding.pid).inserted {
                    foundNew = true
                    if killedPIDs.insert(finding.pid).inserted {
                        killed.append(ProcessSummary(pid: finding.pid, command: finding.command ?? "?"))
                    }
                }
                _ = cc_pidfd_send_signal(finding.pidfd, signal)
                if signal != SIGKILL { _ = cc_pidfd_send_signal(finding.pidfd, SIGCONT) }
                Syscalls.close(finding.pidfd)
            }
            guard repeating, sweepPending else { return false }
            if answer.saturated, saturatedPasses < EscapeeSweeper.saturatedPassLimit {
                saturatedPasses += 1
            } else {
                sweepPasses += 1
            }
            // A process seen mid-exec (environment empty) for the first time
            // may be one of ours: the pass is not conclusive, look again.
            sweepInconclusive = answer.inconclusive || !answer.unreadable.isSubset(of: sweepUnreadable)
            sweepUnreadable = answer.unreadable
            if foundNew { lingeringKilled = true }
            if foundNew || sweepInconclusive, sweepPasses < EscapeeSweeper.passLimit { return true }
            sweepEnded()
            return false
        case .listMarked, .keepInCgroup:
            guard sweepPending else { return false }
            if delivered {  // the drain timeout came first: listed as it was then
                sweepEnded()
                return false
            }
            sweepPasses += 1
            var foundNew = false
            if case .keepInCgroup = answer.work {
                keptCgroup = answer.keptCgroup
                foundNew = !answer.moved.isEmpty
                kept.formUnion(answer.moved)
            } else {
                lastSeenKept = answer.marked
            }
            for member in answer.marked where kept.insert(member).inserted { foundNew = true }
            // Listing, not killing: what it left may still be forking. Done
            // once nothing new has appeared for a while and what is there is
            // asleep or had the CPU without forking (the drain timeout bounds
            // the result; passes go on until then if need be).
            if foundNew {
                lastNewKept = .now()
                activityAtLastNew = answer.activity
            }
            let quiet = MonotonicInstant.now() - lastNewKept >= LoopJob.keptQuietPeriod
                && answer.activity.isQuiet(since: activityAtLastNew)
            if !quiet { return true }
            requestListing()  // the sweep is pending until the list is in
            return false
        }
    }

    // MARK: .leaveRunning

    /// What the leader leaves behind keeps running, counted exactly and listed
    /// (up to `leftRunningListLimit`). In the cgroup tier it moves out of the
    /// job's leaf to a cgroup of the job's own under `corral/daemons`, pass
    /// after pass until the leaf is empty (a forking daemon's children are
    /// born where it is); in the process-group tier it is found by the job's
    /// id, pass after pass until a scan finds nothing new. Nothing of it is
    /// signalled. Every pass runs on the inspector.
    func keepDaemons() {
        lastNewKept = .now()
        scheduler.sweeper.request(self)
    }

    /// How long no new process must appear before what a job left is
    /// counted: a daemon still forking makes new ones every few milliseconds.
    static let keptQuietPeriod = Duration.milliseconds(250)

    /// What to list of what was left, as it is now: the job's daemon
    /// cgroup's members (cgroup tier), or the last scan's (process-group tier).
    func keptListing() -> KeptListing {
        KeptListing(cgroup: keptCgroup, shared: keptCgroup != nil && keptCgroup == scheduler.configuration.cgroupTree?.daemons,
                    kept: kept, seen: lastSeenKept)
    }

    /// Lists what was left, on the inspector; the sweep ends when it answers.
    func requestListing() {
        let listing = keptListing()
        let id = id
        scheduler.inspect({ listing.run() }, then: { scheduler, list in
            scheduler.job(id)?.listed(list)
        })
    }

    private func listed(_ list: KeptListing.List) {
        guard sweepPending else { return }
        if !delivered {
            leftRunningCount = list.count
            leftRunning = list.processes
        }
        sweepEnded()
    }

    /// The sweep is conclusive (or given up): the result may go out, and a
    /// job already delivered (its drain timeout came first, and passes went
    /// on killing what they found) may leave the table.
    private func sweepEnded() {
        sweepPending = false
        drainProgressed()
        perform(lifecycle.settled(handlesOpen: openHandles, sweepPending: sweepPending))
    }

    /// The most processes a result names in `leftRunning` (it counts them all).
    static let leftRunningListLimit = 1000
}

/// What a `.leaveRunning` job left, to count and name on the inspector.
struct KeptListing: Sendable {
    struct List: Sendable {
        var count = 0
        var processes: [ProcessSummary] = []
    }

    let cgroup: String?
    /// The cgroup is the shared `daemons` one: only the job's own count.
    let shared: Bool
    let kept: Set<pid_t>
    let seen: [pid_t]

    func run() -> List {
        assertNotOnLoopThread()
        var survivors = cgroup.map { CgroupLeaf.members($0).filter { !shared || kept.contains($0) } } ?? seen
        survivors.sort()
        return List(count: survivors.count, processes: survivors.prefix(LoopJob.leftRunningListLimit).map {
            ProcessSummary(pid: $0, command: ProcFiles.command(of: $0))
        })
    }
}
