import Foundation
import XCTest
@testable import Corral

/// A leader that even SIGKILL cannot end (here: frozen by the cgroup v1
/// freezer, which holds it in uninterruptible sleep). The result must still
/// arrive by deadline + grace + drain, and the leader be reaped once it can
/// die, leaving no zombie.
final class StuckLeaderTests: CorralTestCase {
    private let freezerRoot = "/sys/fs/cgroup/freezer"

    func testResultIsDeliveredOnTimeAndTheLeaderReapedLater() throws {
        try XCTSkipUnless(access(freezerRoot + "/cgroup.procs", W_OK) == 0,
                          "needs a writable cgroup v1 freezer at \(freezerRoot) (root, hybrid cgroup host)")
        let freezer = freezerRoot + "/corral-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: freezer, withIntermediateDirectories: false)
        func state(_ value: String) throws { try value.write(toFile: freezer + "/freezer.state", atomically: false, encoding: .utf8) }
        defer {
            try? state("THAWED")
            _ = ProcessTable.wait { rmdir(freezer) == 0 }
        }

        var spec = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))
        spec.timeout = .milliseconds(500)
        spec.killGrace = .milliseconds(300)
        spec.drainTimeout = .milliseconds(300)
        let results = ResultBox()
        let handle = try runner.submit(spec, onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        try String(pid).write(toFile: freezer + "/cgroup.procs", atomically: false, encoding: .utf8)
        try state("FROZEN")

        let result = try XCTUnwrap(results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertFalse(result.leaderReaped, "SIGKILL could not end it in time")
        XCTAssertNil(result.leaderStatus)
        XCTAssertLessThan(result.timing.duration.seconds, 0.5 + 0.3 + 0.3 + 1)
        XCTAssertEqual(ProcessTable.entry(pid)?.state, "D", "still stuck when the result was delivered")

        try state("THAWED")
        // The pending SIGKILL now ends it, and the runner reaps it in the background.
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(pid) == nil }, "reaped: no zombie left")
    }

    /// Shutdown waits for a stuck leader only a bounded time, then says so.
    func testShutdownDoesNotHangOnALeaderStuckPastKill() async throws {
        try XCTSkipUnless(access(freezerRoot + "/cgroup.procs", W_OK) == 0,
                          "needs a writable cgroup v1 freezer at \(freezerRoot) (root, hybrid cgroup host)")
        let freezer = freezerRoot + "/corral-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: freezer, withIntermediateDirectories: false)
        func state(_ value: String) throws { try value.write(toFile: freezer + "/freezer.state", atomically: false, encoding: .utf8) }
        defer {
            try? state("THAWED")
            _ = ProcessTable.wait { rmdir(freezer) == 0 }
        }
        var configuration = Runner.Configuration()
        configuration.shutdownReapTimeout = .milliseconds(500)
        let stuck = try Runner(configuration: configuration)
        var spec = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))
        spec.killGrace = .milliseconds(200)
        spec.drainTimeout = .milliseconds(200)
        let results = ResultBox()
        let handle = try stuck.submit(spec, onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        try String(pid).write(toFile: freezer + "/cgroup.procs", atomically: false, encoding: .utf8)
        try state("FROZEN")

        let started = ContinuousClock.now
        await stuck.shutdown()

        XCTAssertLessThan(ContinuousClock.now - started, .seconds(0.2 + 0.2 + 0.5 + 5), "bounded")
        XCTAssertEqual(results.all.first?.outcome, .cancelled)
        XCTAssertEqual(stuck.diagnostics.abandonedLeaders, 1)
        XCTAssertEqual(stuck.diagnostics.loopCloseStatus, 0)
        // Once it can die it is this process's zombie: reap it here.
        try state("THAWED")
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertTrue([SIGTERM, SIGKILL].contains(status & 0x7f), "ended by the pending stop signals")
    }
}
