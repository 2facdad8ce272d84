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

    /// The exit-versus-deadline race, made to happen: 200 jobs that exit
    /// with code 4 from 100 ms before to 100 ms after their 300 ms deadline.
    /// Each result is one of the two consistent answers — exited 4 (leader
    /// exited 4, seen before the deadline's grace was up, nothing stopped)
    /// or timed out (leader exited 4 or died of the TERM Corral sent) — and
    /// never a mix, such as the TERM's death reported as the job's own.
    func testJobExitingAtItsDeadlineIsExactlyOneOfTheConsistentAnswers() throws {
        let timeout = Duration.milliseconds(300)
        let grace = Duration.seconds(2)
        let results = ResultBox()
        for index in 0..<200 {
            let seconds = 0.2 + Double(index % 21) * 0.01
            var spec = JobSpec.shell("sleep \(seconds); exit 4", timeout: timeout)
            spec.killGrace = grace
            try runner.submit(spec, onCompletion: results.add)
        }
        let all = results.wait(for: 200, upTo: .seconds(120))
        XCTAssertEqual(all.count, 200)

        var exited = 0
        var timedOut = 0
        for result in all {
            let spawned = try XCTUnwrap(result.timing.spawned)
            let leaderExited = try XCTUnwrap(result.timing.leaderExited, "\(result.id)")
            XCTAssertTrue(result.leaderReaped)
            switch result.outcome {
            case .exited(4):
                exited += 1
                XCTAssertEqual(result.leaderStatus, .exited(4), "\(result.id)")
                XCTAssertLessThan(leaderExited - spawned, timeout + grace, "\(result.id): exited, yet seen past the grace")
                XCTAssertLessThan(result.timing.duration, timeout + grace, "\(result.id)")
                XCTAssertFalse(result.lingeringKilled, "\(result.id)")
                XCTAssertFalse(result.pipesForceClosed, "\(result.id)")
            case .timedOut:
                timedOut += 1
                // KILL: a loaded host held the spawn's child from its exec
                // past the timeout, and the stuck-spawn watch killed it
                // there, long before a grace could have run out (a KILL
                // at the grace's end would mean a TERM lost).
                let killedBeforeItsExec = result.leaderStatus == .signaled(.kill, coreDumped: false)
                    && leaderExited - spawned < timeout + grace
                XCTAssertTrue([.exited(4), .signaled(.terminate, coreDumped: false)].contains(result.leaderStatus)
                                || killedBeforeItsExec,
                              "\(result.id): \(String(describing: result.leaderStatus))")
                // libuv's clock has whole milliseconds: a deadline may fire up to 1 ms short.
                XCTAssertGreaterThanOrEqual(result.timing.duration, timeout - .milliseconds(2),
                                            "\(result.id): timed out early")
                XCTAssertLessThan(result.timing.duration, timeout + grace + .seconds(1), "\(result.id)")
            default:
                XCTFail("\(result.id): \(result.outcome) with leader \(String(describing: result.leaderStatus))")
            }
        }
        XCTAssertGreaterThan(exited, 0, "some jobs won the race")
        XCTAssertGreaterThan(timedOut, 0, "some deadlines won the race")
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
