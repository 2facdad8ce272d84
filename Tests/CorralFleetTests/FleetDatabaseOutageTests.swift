import CorralTestSupport
import Foundation
import XCTest

/// The database out of an agent's reach mid-run: its jobs keep their
/// deadlines and run to the end; the task is `lost` after the TTL; when
/// the database is back the agent reports what happened, nothing runs twice.
final class FleetDatabaseOutageTests: FleetTestCase {
    func testJobsRunThroughAnOutageAndTheirOutcomesArriveWhenTheDatabaseIsBack() throws {
        guard let components = URLComponents(string: databaseURL), let port = components.port else {
            throw FleetTestFailure("no port in \(databaseURL)")
        }
        let relay = try TCPRelay(to: UInt16(port))
        defer { relay.cut() }
        let throughRelay = databaseURL.replacingOccurrences(of: ":\(port)/", with: ":\(relay.port)/")
        try startAgent("direct")
        try startAgent("cut", database: throughRelay)
        // One job outlives the outage and ends by itself, one is stopped by
        // its deadline during it.
        let run = try createRun(#"{"target":{"hosts":["cut","direct"]},"job":{"shell":"echo ran >> ran.txt; echo begin; sleep 2; echo end","timeout":"30s"}}"#)
        let deadline = try createRun(#"{"target":{"hosts":["cut"]},"job":{"shell":"echo waiting; sleep 60","timeout":"2s"}}"#)
        XCTAssertTrue(waitUntil {
            (try? self.tasks(self.runView(run))["cut"]?["state"] as? String) == "running"
                && (try? self.tasks(self.runView(deadline))["cut"]?["state"] as? String) == "running"
        })
        relay.cut()
        // Past the TTL the server has the agent down and its tasks lost.
        let view = try waitForRun(run, upTo: .seconds(60))
        XCTAssertEqual(tasks(view)["cut"]?["state"] as? String, "lost", "\(tasks(view))")
        XCTAssertEqual(tasks(view)["direct"]?["state"] as? String, "exited")
        XCTAssertEqual(try waitForRun(deadline)["state"] as? String, "done")
        XCTAssertTrue(waitUntil { self.jobProcesses().isEmpty }, "the jobs end on their own: \(jobProcesses())")

        try relay.restore()
        var outcome: [String: [String: Any]] = [:]
        XCTAssertTrue(waitUntil {
            let first = (try? self.tasks(self.runView(run))["cut"]) ?? [:]
            let second = (try? self.tasks(self.runView(deadline))["cut"]) ?? [:]
            outcome = ["run": first, "deadline": second]
            return first["state"] as? String == "exited" && second["state"] as? String == "timed_out"
        }, "\(outcome)")
        XCTAssertEqual((outcome["run"]?["result"] as? [String: Any])?["stdout"] as? String, "begin\nend\n")
        XCTAssertEqual((outcome["deadline"]?["result"] as? [String: Any])?["stdout"] as? String, "waiting\n")
        XCTAssertFalse(outcome["run"]?["reconciled_at"] is NSNull)
        XCTAssertEqual(agentState("cut"), "up", "heartbeats resumed")
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(try String(contentsOfFile: scratch.appendingPathComponent("cut/ran.txt").path, encoding: .utf8),
                       "ran\n", "never run again")
    }
}
