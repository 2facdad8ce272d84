import XCTest
@testable import Corral

/// The lifecycle's transitions on their own (the real processes behind
/// each are exercised by the other suites): every path ends the job once,
/// with the ending its outcome is built from, and a timer of a state
/// already left does nothing.
final class JobLifecycleTests: XCTestCase {
    typealias Machine = JobLifecycle

    /// Runs a job through `events` and returns every action, in order.
    private func run(_ events: [(inout Machine) -> [Machine.Action]]) -> (Machine, [Machine.Action]) {
        var machine = Machine()
        var actions: [Machine.Action] = []
        for event in events { actions += event(&machine) }
        return (machine, actions)
    }

    private func delivered(_ actions: [Machine.Action]) -> [Machine.Ending] {
        actions.compactMap { if case .beginDelivery(let ending) = $0 { ending } else { nil } }
    }

    func testAJobThatExitsOnItsOwnDrainsThenDeliversItsExit() {
        let (machine, actions) = run([
            { $0.spawned(hasTimeout: true, stopSignalIsKill: false) },
            { $0.leaderExited(.exited(3), lingering: .kill) },
            { $0.drained(ready: false) },
            { $0.drained(ready: true) },
            { $0.deliveryBegan(askedInspector: true) },
            { $0.inspectorAnswered() },
            { $0.settled(handlesOpen: 0, sweepPending: false) },
        ])
        XCTAssertEqual(actions, [
            .armTimer(.deadline),
            .reapLeader(killingTheRest: true), .stopTimer, .sweepAfterLeader, .armTimer(.drain),
            .stopTimer, .beginDelivery(.exited(.exited(3))),
            .armTimer(.finish),
            .stopTimer, .handOver,
            .leaveTable,
        ])
        XCTAssertEqual(machine.state, .finished)
    }

    func testTheDeadlineStopsThenKillsThenDeliversWithoutTheLeader() {
        let (machine, actions) = run([
            { $0.spawned(hasTimeout: true, stopSignalIsKill: false) },
            { $0.timerFired(.deadline, leader: .running, lingering: .kill, stopSignalIsKill: false) },
            { $0.timerFired(.grace, leader: .running, lingering: .kill, stopSignalIsKill: false) },
            { $0.timerFired(.reapWait, leader: .running, lingering: .kill, stopSignalIsKill: false) },
            { $0.deliveryBegan(askedInspector: false) },
            // The stuck leader dies after delivery: only reaped.
            { $0.leaderExited(.signaled(.kill, coreDumped: false), lingering: .kill) },
            { $0.settled(handlesOpen: 0, sweepPending: false) },
        ])
        XCTAssertEqual(delivered(actions), [.stopped(.deadline)])
        XCTAssertTrue(actions.contains(.sendStopSignal))
        XCTAssertEqual(actions.filter { $0 == .killEverything }.count, 1)
        XCTAssertEqual(actions.suffix(2), [.reapLeader(killingTheRest: true), .leaveTable])
        XCTAssertEqual(machine.stopReason, .deadline)
    }

    func testAnExitThatRacedTheDeadlineIsTheExit() {
        let (_, actions) = run([
            { $0.spawned(hasTimeout: true, stopSignalIsKill: false) },
            { $0.timerFired(.deadline, leader: .exited(.exited(0)), lingering: .kill, stopSignalIsKill: false) },
            { $0.drained(ready: true) },
        ])
        XCTAssertFalse(actions.contains(.sendStopSignal))
        XCTAssertEqual(delivered(actions), [.exited(.exited(0))])
    }

    func testCancelInEveryStateEndsTheJobOnceOrNotAtAll() {
        // Spawning: remembered, and the job is stopped as soon as it runs.
        var machine = Machine()
        XCTAssertEqual(machine.cancel(stopSignalIsKill: false), [])
        XCTAssertEqual(machine.spawned(hasTimeout: true, stopSignalIsKill: false),
                       [.stopTimer, .sendStopSignal, .armTimer(.grace)])
        // Stopping already: nothing more.
        XCTAssertEqual(machine.cancel(stopSignalIsKill: false), [])
        // The leader exits on the stop signal: the ending is the cancel.
        _ = machine.leaderExited(.signaled(.terminate, coreDumped: false), lingering: .keep)
        XCTAssertEqual(machine.state, .draining(.stopped(.cancel)))
        // Draining: cancel closes what still drains at once.
        XCTAssertEqual(machine.cancel(stopSignalIsKill: false), [.stopTimer, .beginDelivery(.stopped(.cancel))])
        // Finishing: too late to matter.
        XCTAssertEqual(machine.cancel(stopSignalIsKill: false), [])
    }

    func testAStopSignalOfKillSkipsTheGrace() {
        var machine = Machine()
        _ = machine.spawned(hasTimeout: false, stopSignalIsKill: true)
        XCTAssertEqual(machine.cancel(stopSignalIsKill: true), [.stopTimer, .killEverything, .armTimer(.reapWait)])
        XCTAssertEqual(machine.state, .killing(.cancel))
    }

    func testATimerOfAStateAlreadyLeftDoesNothing() {
        var machine = Machine()
        _ = machine.spawned(hasTimeout: true, stopSignalIsKill: false)
        _ = machine.leaderExited(.exited(0), lingering: .kill)
        for wait in [Machine.Wait.deadline, .grace, .reapWait, .finish] {
            XCTAssertEqual(machine.timerFired(wait, leader: .running, lingering: .kill, stopSignalIsKill: false), [],
                           "\(wait) in draining")
        }
        XCTAssertEqual(machine.state, .draining(.exited(.exited(0))))
    }

    func testAVanishedLeaderIsForgottenAndDeliveredAsSuch() {
        let (machine, actions) = run([
            { $0.spawned(hasTimeout: false, stopSignalIsKill: false) },
            { $0.leaderVanished(lingering: .kill) },
            { $0.timerFired(.drain, leader: .running, lingering: .kill, stopSignalIsKill: false) },
        ])
        XCTAssertEqual(actions.first, .forgetLeader)
        XCTAssertEqual(delivered(actions), [.vanished])
        XCTAssertEqual(machine.state, .finishing(.vanished))
    }

    func testKeptDaemonsAreNotKilledAtTheLeadersExitUnlessTheJobWasStopped() {
        var kept = Machine()
        _ = kept.spawned(hasTimeout: false, stopSignalIsKill: false)
        XCTAssertEqual(kept.leaderExited(.exited(0), lingering: .keep).first, .reapLeader(killingTheRest: false))
        var stopped = Machine()
        _ = stopped.spawned(hasTimeout: true, stopSignalIsKill: false)
        _ = stopped.timerFired(.deadline, leader: .running, lingering: .keep, stopSignalIsKill: false)
        XCTAssertEqual(stopped.leaderExited(.exited(0), lingering: .keep).first, .reapLeader(killingTheRest: true))
    }

    func testTheJobLeavesTheTableOnlyOnceHandlesAndSweepAreDone() {
        var machine = Machine()
        _ = machine.spawned(hasTimeout: false, stopSignalIsKill: false)
        _ = machine.leaderExited(.exited(0), lingering: .kill)
        _ = machine.timerFired(.drain, leader: .running, lingering: .kill, stopSignalIsKill: false)
        _ = machine.deliveryBegan(askedInspector: false)
        XCTAssertEqual(machine.settled(handlesOpen: 1, sweepPending: false), [])
        XCTAssertEqual(machine.settled(handlesOpen: 0, sweepPending: true), [])
        XCTAssertEqual(machine.settled(handlesOpen: 0, sweepPending: false), [.leaveTable])
        XCTAssertEqual(machine.settled(handlesOpen: 0, sweepPending: false), [], "once")
        XCTAssertEqual(machine.inspectorAnswered(), [], "a late answer")
    }
}
