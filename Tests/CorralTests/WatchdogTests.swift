import Foundation
import Synchronization
import XCTest
import CorralTestSupport
@testable import Corral

/// The runner's watchdog: a library host killed with SIGKILL takes its jobs
/// with it, and an orderly shutdown leaves no watchdog behind.
final class WatchdogTests: CorralTestCase {
    private static let hostVariable = "CORRAL_WATCHDOG_HOST_JOBS"

    /// Not a test by itself: the host process of
    /// `testKilledHostTakesItsJobsWithIt`, which re-runs this test binary
    /// with only this test selected and `CORRAL_WATCHDOG_HOST_JOBS` set.
    /// It starts that many jobs and waits to be killed.
    func testHostHelper() async throws {
        guard let count = ProcessInfo.processInfo.environment[WatchdogTests.hostVariable].flatMap(Int.init) else { return }
        for _ in 0..<count {
            // One grandchild leaves the session: only the sweep finds it without cgroups.
            try runner.submit(.shell("setsid sleep 300 & sleep 300 & wait"), onCompletion: { _ in })
        }
        while true { try await Task.sleep(for: .seconds(1000)) }
    }

    func testKilledHostTakesItsJobsWithIt() throws {
        let marker = UUID().uuidString
        // In the cgroup tier the host runs in a cgroup of this test's own.
        let cgroup = runner.containment.tier == .cgroup ? PrivateCgroup() : nil
        defer {
            OrphanedJobs.killAll(marker)
            cgroup?.remove()
        }
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let host = try HostProcess([executable, "CorralTests.WatchdogTests/testHostHelper"], marker: marker,
                                   extraEnvironment: [WatchdogTests.hostVariable: "3"],
                                   log: scratch.appendingPathComponent("host.log").path, cgroup: cgroup?.path)
        XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 6),
                      "the host started its jobs: \(EndToEnd.markedProcesses(marker))")
        let killedAt = host.killHard()
        let (elapsed, left) = OrphanedJobs.waitForNone(marker, since: killedAt)
        XCTAssertTrue(left.isEmpty, "still alive 5 s after kill -9: \(left)")
        if let elapsed {
            XCTAssertLessThan(elapsed, .seconds(2))
            print("library host [\(runner.containment.tier)]: the last process of its jobs and its watchdog were gone \(elapsed.seconds * 1000) ms after kill -9")
        }
    }

    func testWatchdogHoldsNothingOfTheRunnerAndExitsAtShutdown() async throws {
        let pid = runner.watchdog.pid
        let result = try await runner.run(.shell("echo hi"))
        XCTAssertEqual(result.stdout.text, "hi\n")

        // Only /dev/null as stdio, its control pipe and the runner's pidfd.
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        let targets = fds.map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "?" }
        XCTAssertEqual(fds.count, 5, "\(targets)")
        XCTAssertEqual(targets.filter { $0 == "/dev/null" }.count, 3, "\(targets)")
        XCTAssertEqual(targets.filter { $0.hasPrefix("pipe:") }.count, 1, "\(targets)")
        XCTAssertEqual(targets.filter { $0.contains("pidfd") }.count, 1, "\(targets)")
        // Its own session, so the terminal's Ctrl-C does not reach it.
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(stat.lastIndex(of: ")")!, offsetBy: 2)...].split(separator: " ")
        XCTAssertEqual(Int32(fields[3]), pid, "session id")
        XCTAssertEqual(ProcessTable.entry(pid)?.command, "corral-watchdog")
        kill(pid, SIGINT)
        kill(pid, SIGTERM)
        kill(pid, SIGHUP)
        usleep(50_000)
        XCTAssertNotNil(ProcessTable.entry(pid), "it ignores INT, TERM and HUP")

        await runner.shutdown()
        XCTAssertNil(ProcessTable.entry(pid), "exited and reaped at shutdown")
    }
}
