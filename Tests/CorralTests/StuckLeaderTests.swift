import Foundation
import XCTest
@testable import Corral

/// A leader that even SIGKILL cannot end (here: frozen by the cgroup v1
/// freezer, which holds it in uninterruptible sleep). The result must still
/// arrive by deadline + grace + drain, and the leader be reaped once it can
/// die, leaving no zombie.
final class StuckLeaderTests: CorralTestCase {
    func testResultIsDeliveredOnTimeAndTheLeaderReapedLater() throws {
        let freezer = try Freezer()
        defer { freezer.remove() }

        var spec = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))
        // Long enough for this test to find and freeze the leader first on
        // a loaded machine (500 ms was not, in one CI run).
        spec.timeout = .seconds(3)
        spec.killGrace = .milliseconds(300)
        spec.drainTimeout = .milliseconds(300)
        let results = ResultBox()
        let handle = try runner.submit(spec, onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        try freezer.freeze(pid)
        XCTAssertTrue(ProcessTable.wait { freezer.isFrozen }, "frozen")

        let result = try XCTUnwrap(results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertFalse(result.leaderReaped, "SIGKILL could not end it in time")
        XCTAssertNil(result.leaderStatus)
        XCTAssertLessThan(result.timing.duration.seconds, 3 + 0.3 + 0.3 + 1)
        XCTAssertEqual(ProcessTable.entry(pid)?.state, "D", "still stuck when the result was delivered")

        try freezer.thaw()
        // The pending SIGKILL now ends it, and the runner reaps it in the background.
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(pid) == nil }, "reaped: no zombie left")
    }

    /// Shutdown waits for a stuck leader only a bounded time, then says so.
    func testShutdownDoesNotHangOnALeaderStuckPastKill() async throws {
        let freezer = try Freezer()
        defer { freezer.remove() }
        var configuration = Runner.Configuration()
        configuration.shutdownReapTimeout = .milliseconds(500)
        let stuck = try Runner(configuration: configuration)
        var spec = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))
        spec.killGrace = .milliseconds(200)
        spec.drainTimeout = .milliseconds(200)
        let results = ResultBox()
        let handle = try stuck.submit(spec, onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        try freezer.freeze(pid)

        let started = ContinuousClock.now
        await stuck.shutdown()

        XCTAssertLessThan(ContinuousClock.now - started, .seconds(0.2 + 0.2 + 0.5 + 5), "bounded")
        XCTAssertEqual(results.all.first?.outcome, .cancelled)
        XCTAssertEqual(stuck.diagnostics.abandonedLeaders, 1)
        XCTAssertEqual(stuck.diagnostics.loopCloseStatus, 0)
        // Once it can die it is this process's zombie: reap it here.
        try freezer.thaw()
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertTrue([SIGTERM, SIGKILL].contains(status & 0x7f), "ended by the pending stop signals")
    }
}

/// A cgroup v1 freezer of a test's own: a frozen process ignores SIGKILL
/// until it is thawed, like one stuck in the kernel.
struct Freezer {
    static let root = "/sys/fs/cgroup/freezer"
    let path = Freezer.root + "/corral-test-\(UUID().uuidString)"

    init() throws {
        try XCTSkipUnless(access(Freezer.root + "/cgroup.procs", W_OK) == 0,
                          "needs a writable cgroup v1 freezer at \(Freezer.root) (root, hybrid cgroup host)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    func freeze(_ pid: Int32) throws {
        try String(pid).write(toFile: path + "/cgroup.procs", atomically: false, encoding: .utf8)
        try "FROZEN".write(toFile: path + "/freezer.state", atomically: false, encoding: .utf8)
    }

    /// Every process of it has stopped running (FREEZING until then).
    var isFrozen: Bool {
        (try? String(contentsOfFile: path + "/freezer.state", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) == "FROZEN"
    }

    func thaw() throws {
        try "THAWED".write(toFile: path + "/freezer.state", atomically: false, encoding: .utf8)
    }

    func remove() {
        try? thaw()
        _ = ProcessTable.wait { rmdir(path) == 0 }
    }
}
