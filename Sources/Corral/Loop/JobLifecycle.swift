/// A job's lifecycle on the loop, as one state machine: every event the
/// loop sees for a job comes here, and the answer is what to do. Nothing
/// here touches a process, a descriptor or a handle — `LoopJob` performs
/// the actions (`LoopJob.perform`), and reports what they found back as
/// events. Read it top to bottom:
///
///     spawning ──spawned──▶ running ──deadline/cancel──▶ stopping ──grace──▶ killing
///        │ cancelled, or stuck │                            │                   │
///        │ before exec past    │                            │                   │
///        │ its deadline        │                            │                   │
///        └──────────▶ (stopped as soon as it runs)          │                   │ reap wait
///                              └──────leader ended──────────┴───────────────────┤
///                                            ▼                                  ▼
///                                        draining ──ready/drain timeout──▶ finishing ──answer──▶ handedOver ──▶ finished
///
/// One timer serves every state that waits for something (`Wait`): it is
/// armed on entering such a state and stopped on leaving it, so a timer
/// that fires always belongs to the current state.
struct JobLifecycle {
    enum StopReason: Equatable {
        case deadline
        case cancel
    }

    /// How the job's run ended, as far as its outcome goes: a stop decides
    /// it whatever the leader's status; otherwise the leader's exit does.
    enum Ending: Equatable {
        case stopped(StopReason)
        case exited(TerminationStatus)
        /// Reaped by someone else in this process: its status is lost.
        case vanished
    }

    enum State: Equatable {
        /// Handed to the spawn thread; no pid yet, nothing to signal. A
        /// stop that came meanwhile (a cancel, or the deadline passing while
        /// the child was stuck before its exec) acts once the spawn answers.
        case spawning(stop: StopReason?)
        /// The leader runs (the deadline timer is armed if there is a timeout).
        case running
        /// The stop signal went to the group; SIGKILL when the grace ends.
        case stopping(StopReason)
        /// SIGKILL went to everything; the leader's exit is waited for, at
        /// most the drain timeout (a leader stuck in the kernel does not hold
        /// the result).
        case killing(StopReason)
        /// The leader is gone. What it left drains — pipes to end-of-file,
        /// the cgroup leaf to empty, the sweep to a conclusive pass — at most
        /// the drain timeout.
        case draining(Ending)
        /// Delivery began: open pipes were closed and the inspector asked
        /// what the result still needs; at most `finishTimeout` for its answer.
        case finishing(Ending)
        /// The result went to the host. The job stays in the table while
        /// its handles close and (if the drain timeout came first) its sweep
        /// goes on killing what carries its id.
        case handedOver
        /// Out of the table.
        case finished
    }

    /// What the one timer waits for in the current state.
    enum Wait: Equatable {
        case deadline
        case grace
        case reapWait
        case drain
        case finish
    }

    enum Action: Equatable {
        case armTimer(Wait)
        case stopTimer
        /// The stop signal and SIGCONT to the group (and, in the process-group
        /// tier, to what carries the id elsewhere).
        case sendStopSignal
        /// SIGKILL to the group, the cgroup, and what carries the id.
        case killEverything
        /// Reap the exited leader; kill what is left of its group and leaf
        /// first when `killingTheRest` (the group is pinned until the reap).
        case reapLeader(killingTheRest: Bool)
        /// The leader was reaped elsewhere: stop watching it, signal no group.
        case forgetLeader
        /// After the leader: find what carries the id (killed, or listed
        /// when the job leaves its daemons running).
        case sweepAfterLeader
        /// See whether anything is still waited for (`drained` follows):
        /// the pipes may have ended before the leader, and a job that forked
        /// nothing is not swept.
        case checkDrained
        /// Close what is open, ask the inspector what the result needs.
        case beginDelivery(Ending)
        /// The result goes to the host (with the inspector's answer, if in).
        case handOver
        /// The job leaves the table.
        case leaveTable
    }

    private(set) var state: State = .spawning(stop: nil)

    /// Why the job was stopped, if it was.
    var stopReason: StopReason? {
        switch state {
        case .stopping(let reason), .killing(let reason): reason
        case .draining(.stopped(let reason)), .finishing(.stopped(let reason)): reason
        case .handedOver, .finished: deliveredStop
        default: nil
        }
    }

    /// The stop reason of a delivered job (kept for what follows delivery).
    private var deliveredStop: StopReason?

    /// Delivery has begun: nothing more is read or waited for.
    var hasBegunDelivery: Bool {
        switch state {
        case .finishing, .handedOver, .finished: true
        default: false
        }
    }

    var hasHandedOver: Bool { state == .handedOver || state == .finished }

    var isSpawning: Bool { if case .spawning = state { true } else { false } }

    // MARK: Start

    /// The spawn thread answered: the leader runs. A job cancelled while its
    /// spawn was out is stopped at once; otherwise its deadline counts from now.
    mutating func spawned(hasTimeout: Bool, stopSignalIsKill: Bool) -> [Action] {
        guard case .spawning(let reason) = state else { preconditionFailure("spawned twice") }
        state = .running
        if let reason { return stop(reason, stopSignalIsKill: stopSignalIsKill) }
        return hasTimeout ? [.armTimer(.deadline)] : []
    }

    /// The child was killed before its exec (`StuckSpawns`): stopped for
    /// `reason` once the spawn answers. A cancel that came first stays the reason.
    mutating func spawnAborted(_ reason: StopReason) -> [Action] {
        guard case .spawning(let earlier) = state else { return [] }
        state = .spawning(stop: earlier ?? reason)
        return []
    }

    // MARK: Stop

    /// Cancellation from the host, in any state.
    mutating func cancel(stopSignalIsKill: Bool) -> [Action] {
        switch state {
        case .spawning(let earlier):
            state = .spawning(stop: earlier ?? .cancel)  // no pid, no group yet
            return []
        case .running:
            return stop(.cancel, stopSignalIsKill: stopSignalIsKill)
        case .draining(let ending):
            // The leader is gone and only pipes (or the leaf) drain: close them now.
            return deliver(ending)
        case .stopping, .killing, .finishing, .handedOver, .finished:
            return []  // already stopping, or too late to matter
        }
    }

    private mutating func stop(_ reason: StopReason, stopSignalIsKill: Bool) -> [Action] {
        if stopSignalIsKill {
            state = .killing(reason)
            return [.stopTimer, .killEverything, .armTimer(.reapWait)]
        }
        state = .stopping(reason)
        return [.stopTimer, .sendStopSignal, .armTimer(.grace)]
    }

    // MARK: Timer

    /// The one timer fired. `leader` is the leader as the loop sees it now:
    /// an exit that raced the deadline in this iteration counts as the exit.
    mutating func timerFired(_ wait: Wait, leader: LeaderNow, lingering: Lingering,
                             stopSignalIsKill: Bool) -> [Action] {
        switch (state, wait) {
        case (.running, .deadline):
            switch leader {
            case .running: return stop(.deadline, stopSignalIsKill: stopSignalIsKill)
            case .exited(let status): return leaderExited(status, lingering: lingering)
            case .vanished: return leaderVanished(lingering: lingering)
            }
        case (.stopping(let reason), .grace):
            state = .killing(reason)
            return [.killEverything, .armTimer(.reapWait)]
        case (.killing(let reason), .reapWait):
            // Delivered without the leader; it is reaped when it does exit.
            return deliver(.stopped(reason))
        case (.draining(let ending), .drain):
            return deliver(ending)  // what still holds the pipes is force-closed
        case (.finishing, .finish):
            return handOver()  // without the inspector's answer
        default:
            return []  // a timer of a state already left (stopped with it)
        }
    }

    // MARK: Leader

    /// What the leader is doing, as the loop reads it off the pidfd.
    enum LeaderNow: Equatable {
        case running
        case exited(TerminationStatus)
        case vanished
    }

    /// What the job does with the processes its leader leaves behind.
    enum Lingering: Equatable {
        case kill
        case keep
    }

    /// The leader exited (its pidfd became readable). Before delivery it
    /// ends the run: reap it (killing what remains of its group and leaf
    /// unless the job keeps its daemons and was not stopped), sweep for what
    /// left both, and drain. After delivery (the reap wait came first) it is
    /// only reaped.
    mutating func leaderExited(_ status: TerminationStatus, lingering: Lingering) -> [Action] {
        let stopped = stopReason
        let reap = Action.reapLeader(killingTheRest: lingering == .kill || stopped != nil)
        switch state {
        case .running, .stopping, .killing:
            let ending: Ending = stopped.map(Ending.stopped) ?? .exited(status)
            state = .draining(ending)
            return [reap, .stopTimer, .sweepAfterLeader, .armTimer(.drain), .checkDrained]
        case .finishing, .handedOver, .finished:
            return [reap]
        case .spawning, .draining:
            return []  // no leader yet; or already ended
        }
    }

    /// Someone else reaped the leader: its status is lost, and its group may
    /// no longer be pinned, so no more group signals.
    mutating func leaderVanished(lingering: Lingering) -> [Action] {
        switch state {
        case .running, .stopping, .killing:
            let ending: Ending = stopReason.map(Ending.stopped) ?? .vanished
            state = .draining(ending)
            return [.forgetLeader, .stopTimer, .sweepAfterLeader, .armTimer(.drain), .checkDrained]
        case .finishing, .handedOver, .finished:
            return [.forgetLeader]
        case .spawning, .draining:
            return []
        }
    }

    // MARK: Draining

    /// Something the result waits for ended: a pipe reached end-of-file,
    /// the leaf emptied, or the sweep concluded. `ready` says whether all
    /// of it has (and the leader is reaped).
    mutating func drained(ready: Bool) -> [Action] {
        guard case .draining(let ending) = state, ready else { return [] }
        return deliver(ending)
    }

    private mutating func deliver(_ ending: Ending) -> [Action] {
        state = .finishing(ending)
        if case .stopped(let reason) = ending { deliveredStop = reason }
        return [.stopTimer, .beginDelivery(ending)]
    }

    // MARK: Delivery

    /// Delivery began: wait for the inspector's answer if it was asked.
    mutating func deliveryBegan(askedInspector: Bool) -> [Action] {
        guard case .finishing = state else { return [] }
        return askedInspector ? [.armTimer(.finish)] : handOver()
    }

    /// The inspector answered what the result needed.
    mutating func inspectorAnswered() -> [Action] {
        guard case .finishing = state else { return [] }  // late: the result went out without it
        return handOver()
    }

    private mutating func handOver() -> [Action] {
        state = .handedOver
        return [.stopTimer, .handOver]
    }

    // MARK: Closing

    /// A handle closed, or the sweep concluded, after the result went out:
    /// the job leaves the table once both are done.
    mutating func settled(handlesOpen: Int, sweepPending: Bool) -> [Action] {
        guard state == .handedOver, handlesOpen == 0, !sweepPending else { return [] }
        state = .finished
        return [.leaveTable]
    }
}
