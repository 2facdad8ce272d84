import Foundation
import XCTest
@testable import Corral

/// The original hang: a timed-out job whose grandchildren hold its pipes.
final class DeadlineTests: CorralTestCase {
    /// Scenario 1: a script prints, then runs a script that runs `sleep 1000`.
    func testSeedScriptTimesOutWithItsOutputAndNothingLeft() async throws {
        let inner = try script("inner.sh", "sleep 1000")
        let outer = try script("sleep.sh", "echo 'in sleep'\n\(inner)")
        var spec = JobSpec(.executable(outer))
        spec.timeout = .seconds(1)

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertTrue(result.stdout.text.contains("in sleep"), result.stdout.text)
        XCTAssertEqual(result.leaderStatus, .signaled(.terminate, coreDumped: false))
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 2 + 1, "delivered within timeout + grace + 1 s")
        XCTAssertGreaterThanOrEqual(result.timing.duration.seconds, 1, "not before the deadline")
        assertNothingLeft(result)
    }

    /// Scenario 3: a tree in which every process ignores TERM.
    func testTreeIgnoringTermIsKilledAfterTheGrace() async throws {
        var spec = JobSpec.shell("trap '' TERM; echo started; sh -c \"trap '' TERM; sleep 1000\"; echo unreachable",
                                 timeout: .seconds(1))
        spec.killGrace = .seconds(1)

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertEqual(result.leaderStatus, .signaled(.kill, coreDumped: false), "TERM was ignored; KILL ended it")
        XCTAssertEqual(result.stdout.text, "started\n")
        XCTAssertGreaterThanOrEqual(result.timing.duration.seconds, 2, "KILL only after the grace")
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 1 + 1 + 1)
        assertNothingLeft(result)
    }

    /// A descendant that left the group and wiped its environment cannot be
    /// found without cgroups: it keeps the pipe, and the drain timeout closes
    /// it, so the result never waits on it; the result names who held it.
    func testUnfindableEscapeeHoldingThePipeDoesNotHoldTheResult() async throws {
        var configuration = Runner.Configuration()
        configuration.containment = .processGroup
        let groups = try Runner(configuration: configuration)
        var spec = JobSpec.shell("setsid env -i /bin/sleep 1000 & sleep 1000", timeout: .seconds(1))
        spec.drainTimeout = .milliseconds(500)

        let result = try await groups.run(spec)
        await groups.shutdown()

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertTrue(result.pipesForceClosed)
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 2 + 0.5 + 1)
        XCTAssertEqual(result.pipeHolders.map(\.process.command), ["sleep"])
        XCTAssertEqual(result.pipeHolders.first?.killed, false, "nothing could find it to kill it")
        XCTAssertEqual(result.escapeesKilled, 0)
        // This is what only the cgroup tier can contain; clean up by hand.
        for holder in result.pipeHolders { kill(holder.process.pid, SIGKILL) }
        assertNothingLeft(result)
    }

    /// A job that exits just before its deadline is `exited`, not `timedOut`.
    func testJobFinishingBeforeTheDeadlineIsNotTimedOut() async throws {
        let result = try await runner.run(.shell("exit 4", timeout: .seconds(30)))
        XCTAssertEqual(result.outcome, .exited(4))
        XCTAssertFalse(result.pipesForceClosed)
    }

    /// A stop signal other than TERM reaches the whole group.
    func testCustomStopSignal() async throws {
        var spec = JobSpec.shell("trap 'echo got-int; exit 9' INT; echo ready; while :; do sleep 0.05; done",
                                 timeout: .milliseconds(500))
        spec.stopSignal = .interrupt
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertEqual(result.leaderStatus, .exited(9))
        XCTAssertEqual(result.stdout.text, "ready\ngot-int\n")
        assertNothingLeft(result)
    }
}
