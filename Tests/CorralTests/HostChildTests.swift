import Foundation
import XCTest
@testable import Corral

/// Scenario 10: the host process's own children are not Corral's business.
final class HostChildTests: CorralTestCase {
    override var configuration: Runner.Configuration { Runner.Configuration() }  // no orphan reaping

    private func spawnHostChild(_ arguments: [String]) throws -> pid_t {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let status = posix_spawn(&pid, arguments[0], nil, &attributes, argv, environ)
        XCTAssertEqual(status, 0)
        return pid
    }

    func testCorralNeitherReapsNorDisturbsTheHostsChildren() async throws {
        let running = try spawnHostChild(["/bin/sleep", "30"])
        let exited = try spawnHostChild(["/bin/sh", "-c", "exit 7"])

        // Jobs that exit, time out and leave children, while the host's run.
        for spec in [JobSpec.shell("exit 1"), .shell("sleep 1000 & sleep 1000", timeout: .milliseconds(300)),
                     JobSpec(.executable("/bin/true"))] {
            let result = try await runner.run(spec)
            XCTAssertNotEqual(result.outcome, .cancelled)
        }

        // The running child is untouched and still ours to wait for.
        var info = siginfo_t()
        XCTAssertEqual(waitid(P_PID, id_t(running), &info, WEXITED | WNOHANG | WNOWAIT), 0)
        XCTAssertEqual(info._sifields._sigchld.si_pid, 0, "still running")
        XCTAssertEqual(ProcessTable.entry(running)?.state.isLetter, true)
        kill(running, SIGKILL)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(running, &status, 0), running, "Corral did not reap it")
        XCTAssertEqual(status & 0x7f, SIGKILL)

        // The child that exited while Corral worked is still there to reap, with its status.
        XCTAssertEqual(waitpid(exited, &status, 0), exited, "Corral did not steal its exit")
        XCTAssertEqual((status >> 8) & 0xff, 7)
    }

    /// A host that lets the kernel reap its children (SIGCHLD ignored) takes
    /// the leader's status away: the result says so instead of hanging.
    func testLeaderReapedByTheHostIsReportedLost() async throws {
        let previous = signal(SIGCHLD, SIG_IGN)
        defer { signal(SIGCHLD, previous) }

        let result = try await runner.run(.shell("echo before; exit 5"))

        guard case .lost(let reason) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertTrue(reason.contains("reaped by someone else"), reason)
        XCTAssertNil(result.leaderStatus)
        XCTAssertEqual(result.stdout.text, "before\n", "the output is still delivered")

        // A deadline on such a job still ends it.
        let timed = try await runner.run(.shell("sleep 1000", timeout: .milliseconds(200)))
        XCTAssertEqual(timed.outcome, .timedOut)
        assertNothingLeft(timed)
    }
}
