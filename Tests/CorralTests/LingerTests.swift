import Foundation
import XCTest
@testable import Corral

/// Scenario 2: the leader exits, leaving a background child on its pipes.
final class LingerTests: CorralTestCase {
    func testLingeringChildIsKilledWhenTheLeaderExits() async throws {
        let result = try await runner.run(.shell("sleep 1000 & echo leader-done; exit 0"))

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "leader-done\n")
        XCTAssertTrue(result.lingeringKilled)
        XCTAssertFalse(result.pipesForceClosed, "killing the group closed the pipe by itself")
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 1, "within the drain timeout + 1 s")
        assertNothingLeft(result)
    }

    func testLeaveRunningKeepsTheDaemonAndStillCompletes() async throws {
        var spec = JobSpec.shell("sleep 1000 & echo leader-done; exit 0")
        spec.lingering = .leaveRunning

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "leader-done\n")
        XCTAssertTrue(result.pipesForceClosed, "the daemon still held the pipe at the drain timeout")
        XCTAssertFalse(result.lingeringKilled)
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 1, "within the drain timeout + 1 s")
        let survivors = ProcessTable.processes(of: result.id, group: result.pid).filter { $0.state != "Z" }
        XCTAssertEqual(survivors.map(\.command), ["sleep"], "the daemon survives")
        survivors.forEach { kill($0.pid, SIGKILL) }
        assertNothingLeft(result)
    }

    func testNoLingeringFlagWhenNothingLingers() async throws {
        let result = try await runner.run(.shell("echo alone"))
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertFalse(result.lingeringKilled)
        XCTAssertTrue(result.leaderReaped)
    }
}
