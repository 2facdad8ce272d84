import Foundation
import XCTest
import CorralTestSupport

/// Issue 11, item 5: corral's death takes its jobs with it. corral is
/// started directly (not as a job of this test's runner, whose containment
/// would clean up and hide what corral's watchdog does), killed with
/// SIGKILL, and nothing of its jobs may be alive 2 s later. Every test runs
/// in both tiers (`--containment auto`, then `process-group`), whatever the
/// suite's own tier: the watchdog's two ways of killing differ most.
/// CORRAL_TEST_CONTAINMENT=processGroup runs the process-group tier only.
final class HostDeathTests: CLITestCase {
    private var tier = "auto"
    private var tiers: [String] {
        ProcessInfo.processInfo.environment["CORRAL_TEST_CONTAINMENT"] == "processGroup" ? ["process-group"] : ["auto", "process-group"]
    }

    /// The hosts themselves: corral (killed, a zombie until reaped) and
    /// its watchdog, which must be gone too, but is not a job process.
    private let hosts: Set<String> = ["corral"]

    /// In the cgroup tier, corral runs in a cgroup of the test's own.
    private var cgroup: PrivateCgroup?

    override func tearDown() async throws {
        OrphanedJobs.killAll(marker)  // whatever a failed test left
        cgroup?.remove()
        try await super.tearDown()
    }

    /// Runs `body` once per tier, each in a clean state.
    private func inEachTier(_ body: () throws -> Void) rethrows {
        for each in tiers {
            tier = each
            cgroup = each == "auto" ? PrivateCgroup() : nil
            defer {
                OrphanedJobs.killAll(marker)
                cgroup?.remove()
                cgroup = nil
            }
            try body()
        }
    }

    private func start(_ arguments: [String]) throws -> HostProcess {
        try HostProcess([CLITestCase.binary] + arguments, marker: marker, log: scratch.appendingPathComponent("corral.log").path,
                        cgroup: cgroup?.path)
    }

    /// Asserts that every marked process but corral is gone within 2 s of
    /// `killedAt` (polling up to 5 s), and then that corral's watchdog has
    /// exited too.
    private func assertJobsDie(since killedAt: ContinuousClock.Instant, _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        let (elapsed, left) = OrphanedJobs.waitForNone(marker, excluding: hosts, since: killedAt)
        XCTAssertTrue(left.isEmpty, "\(what): still alive 5 s after kill -9: \(left)", file: file, line: line)
        if let cgroup {
            // The watchdog removed the dead runner's directory too.
            let runners = { ((try? FileManager.default.contentsOfDirectory(atPath: cgroup.path + "/corral")) ?? []).filter { $0.hasPrefix("r") } }
            XCTAssertTrue(EndToEnd.waitUntil(upTo: .seconds(5), polling: 10_000) { runners().isEmpty },
                          "\(what): runner directories left: \(runners())", file: file, line: line)
        }
        if let elapsed {
            XCTAssertLessThan(elapsed, .seconds(2), "\(what)", file: file, line: line)
            print("\(what) [\(tier)]: the last job process was gone \(elapsed.milliseconds) ms after kill -9")
        }
    }

    func testKillingCorralRunKillsTheJobAndItsGrandchildren() throws {
        try inEachTier {
            // One grandchild has left the job's session: in the process-group
            // tier only the watchdog's CORRAL_JOB_ID sweep finds it.
            let host = try start(["run", "--containment", tier, "--", "/bin/sh", "-c",
                                  "setsid sleep 300 & sleep 300 & sleep 300 & wait"])
            XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 3), "the job started")
            assertJobsDie(since: host.killHard(), "corral run")
        }
    }

    func testKillingCorralBatchKillsFiftyRunningJobs() throws {
        try inEachTier {
            let input = try write("jobs.jsonl", (1...50).map { _ in
                #"{"argv": ["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"]}"#
            }.joined(separator: "\n"))
            let host = try start(["batch", input, "-j", "50", "--quiet", "--containment", tier])
            XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 100), "every job started")
            assertJobsDie(since: host.killHard(), "corral batch, 50 jobs")
        }
    }

    /// Jobs that start, leave daemons and end all the time: corral dies
    /// with some being spawned, some running and some being swept. A job
    /// whose child had run before the loop heard of its spawn was once
    /// unknown to the watchdog, and its daemons outlived corral in the
    /// process-group tier.
    func testKillingCorralBatchWhileJobsStartAndEndKillsEveryDaemon() throws {
        try inEachTier {
            let started = scratch.appendingPathComponent("started-\(tier)").path
            let job = #"echo >> \#(started); setsid sh -c 'sleep 300' >/dev/null 2>&1 & (sleep 300 &); sleep 0.1"#
            let line = String(decoding: try JSONSerialization.data(withJSONObject: ["shell": job]), as: UTF8.self)
            let input = try write("jobs.jsonl", Array(repeating: line, count: 5000).joined(separator: "\n"))
            let host = try start(["batch", input, "-j", "50", "--quiet", "--containment", tier])
            XCTAssertTrue(EndToEnd.waitUntil(upTo: .seconds(60), polling: 10_000) {
                ((try? String(contentsOfFile: started, encoding: .utf8)) ?? "").utf8.count >= 300
            }, "300 jobs started")
            assertJobsDie(since: host.killHard(), "corral batch, jobs starting and ending")
        }
    }

    func testJobThatKillsCorralTakesItselfDown() throws {
        try inEachTier {
            // The job waits for its own grandchildren to exist, then kills corral ($PPID).
            let host = try start(["run", "--containment", tier, "--", "/bin/sh", "-c",
                                  "sleep 300 & sleep 300 & sleep 0.3; kill -9 $PPID; wait"])
            XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 2), "the job started")
            var corralGone = ContinuousClock.now
            XCTAssertTrue(EndToEnd.waitUntil(upTo: .seconds(10), polling: 2_000) {
                corralGone = ContinuousClock.now
                return ProcessStates.isGone(host.pid)
            }, "the job killed corral")
            assertJobsDie(since: corralGone, "a job's kill -9 $PPID")
        }
    }

    func testOrderlyExitLeavesNoWatchdog() throws {
        try inEachTier {
            let host = try start(["run", "--containment", tier, "--", "/bin/true"])
            XCTAssertTrue(EndToEnd.waitUntil(upTo: .seconds(20), polling: 10_000) { ProcessStates.isGone(host.pid) })
            let (elapsed, left) = OrphanedJobs.waitForNone(marker, since: .now, upTo: .seconds(5))
            XCTAssertNotNil(elapsed, "left after corral exited: \(left)")
        }
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

enum ProcessStates {
    /// Gone, or a zombie.
    static func isGone(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state == "Z" || state == "X"
    }
}
