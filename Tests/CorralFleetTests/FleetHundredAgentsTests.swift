import CorralTestSupport
import Foundation
import XCTest

/// A hundred real agent processes on this machine, one run on all of them.
final class FleetHundredAgentsTests: FleetTestCase {
    override var agentTTL: String { "20s" }  // 100 agents starting on 2 cores are slow to first heartbeat

    func testRunOnAHundredAgentsGetsEveryResult() throws {
        let names = (1...100).map { String(format: "h%03d", $0) }
        var agents: [FleetProcess] = []
        for name in names { agents.append(try startAgent(name, idlePoll: "1s", wait: false)) }
        for (name, agent) in zip(names, agents) {
            XCTAssertTrue(agent.waitUntilListening(upTo: .seconds(120)), "\(name): \(agent.output)")
        }
        var up = 0
        XCTAssertTrue(waitUntil(upTo: .seconds(120)) {
            let agents = (try? self.request("GET", "/v1/agents").json["agents"] as? [[String: Any]]) ?? []
            up = agents.filter { $0["state"] as? String == "up" }.count
            return up == 100
        }, "\(up) of 100 agents joined")

        // Each job prints its working directory: the agent's own.
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo \"$PWD\"; echo to-stderr >&2","timeout":"60s"},"max_errors":0}"#)
        let view = try waitForRun(run, upTo: .seconds(180))
        XCTAssertEqual(view["state"] as? String, "done")
        XCTAssertEqual(view["counts"] as? [String: Int], ["exited": 100], "\(view["counts"] ?? "")")
        let tasks = tasks(view)
        XCTAssertEqual(Set(tasks.keys), Set(names))
        var ids: Set<String> = []
        for name in names {
            let result = tasks[name]?["result"] as? [String: Any] ?? [:]
            XCTAssertEqual(result["stdout"] as? String, scratch.appendingPathComponent(name).path + "\n", name)
            XCTAssertEqual(result["stderr"] as? String, "to-stderr\n", name)
            XCTAssertEqual(tasks[name]?["exit_code"] as? Int, 0, name)
            if let id = tasks[name]?["attempt_id"] as? String { ids.insert(id) }
        }
        XCTAssertEqual(ids.count, 100, "an attempt id of its own per host")
    }
}
