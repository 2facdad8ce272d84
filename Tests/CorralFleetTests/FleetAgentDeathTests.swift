import CorralTestSupport
import Foundation
import XCTest

/// An agent that dies or goes silent mid-run: its task is `lost` after the
/// TTL (an error, never run again) and the run completes without it; when
/// the agent is back it reports what its journal recorded.
final class FleetAgentDeathTests: FleetTestCase {
    func testKilledAgentsTaskIsLostThenReconciledFromItsJournalAndNeverRerun() throws {
        for name in ["k1", "k2"] { try startAgent(name) }
        let victim = try startAgent("k3")
        // Each start of the job leaves a line in its host's directory.
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo ran >> ran.txt; sleep 4; echo done","timeout":"30s"}}"#)
        let ranFile = scratch.appendingPathComponent("k3/ran.txt").path
        XCTAssertTrue(waitUntil {
            (try? self.tasks(self.runView(run))["k3"]?["state"] as? String) == "running"
                && FileManager.default.fileExists(atPath: ranFile)
        })
        victim.signal(SIGKILL)
        XCTAssertNotNil(victim.waitForExit())

        let view = try waitForRun(run, upTo: .seconds(60))
        var tasks = tasks(view)
        XCTAssertEqual(tasks["k3"]?["state"] as? String, "lost", "\(tasks)")
        XCTAssertEqual(tasks["k1"]?["state"] as? String, "exited")
        XCTAssertEqual(tasks["k2"]?["state"] as? String, "exited")
        XCTAssertEqual(view["state"] as? String, "done")
        XCTAssertEqual(view["errors"] as? Int, 1, "lost counts as an error")
        XCTAssertTrue(tasks["k3"]?["reconciled_at"] is NSNull)

        // Back with its journal: the job it was running when it died is
        // `lost` there too; the server records that it heard so.
        try startAgent("k3")
        XCTAssertTrue(waitUntil {
            tasks = (try? self.tasks(self.runView(run))) ?? [:]
            return !(tasks["k3"]?["reconciled_at"] is NSNull) && tasks["k3"]?["reconciled_at"] != nil
        }, "\(tasks)")
        XCTAssertEqual(tasks["k3"]?["state"] as? String, "lost")
        XCTAssertEqual((tasks["k3"]?["result"] as? [String: Any])?["outcome"] as? String, "lost")
        // A few polls later it still ran once.
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(try String(contentsOfFile: ranFile, encoding: .utf8), "ran\n", "never run again")
    }

    func testSilentAgentsTaskIsLostThenTakesTheOutcomeItsJobHad() throws {
        try startAgent("s1")
        let silent = try startAgent("s2")
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"sleep 3; echo finished","timeout":"30s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.tasks(self.runView(run))["s2"]?["state"] as? String) == "running" })
        // Stopped, the agent neither heartbeats nor reaps; its job runs on.
        silent.signal(SIGSTOP)
        let view = try waitForRun(run, upTo: .seconds(60))
        var tasks = tasks(view)
        XCTAssertEqual(tasks["s2"]?["state"] as? String, "lost", "\(tasks)")
        XCTAssertEqual(view["state"] as? String, "done")
        XCTAssertTrue(waitUntil { self.jobProcesses().isEmpty }, "the job ends on its own: \(jobProcesses())")

        silent.signal(SIGCONT)
        XCTAssertTrue(waitUntil {
            tasks = (try? self.tasks(self.runView(run))) ?? [:]
            return tasks["s2"]?["state"] as? String == "exited"
        }, "\(tasks)")
        let task = tasks["s2"] ?? [:]
        XCTAssertFalse(task["reconciled_at"] is NSNull)
        XCTAssertEqual(task["exit_code"] as? Int, 0)
        XCTAssertEqual((task["result"] as? [String: Any])?["stdout"] as? String, "finished\n")
        let after = try self.runView(run)
        XCTAssertEqual(after["state"] as? String, "done", "the run's end stands")
        XCTAssertEqual(after["errors"] as? Int, 0)
    }
}
