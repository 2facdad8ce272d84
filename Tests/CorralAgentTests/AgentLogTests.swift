import Foundation
import XCTest

/// The agent's log: a start-up line saying what it is, a line when each job
/// starts (with its pid) and when it ends (outcome, exit, duration,
/// overshoot), per request at debug; as JSON lines when asked.
final class AgentLogTests: AgentTestCase {
    /// The JSON objects among the agent's output lines.
    private func jsonLines(_ output: String) -> [[String: Any]] {
        output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    func testJSONLogHasAStartupLineAndAStartAndEndLinePerJob() throws {
        let agent = try startAgent(["--log-format", "json", "--log-level", "debug"])
        let client = agent.client
        let exited = try client.post("/v1/jobs", json: #"{"shell":"exit 3"}"#)
        let timedOut = try client.post("/v1/jobs", json: #"{"argv":["sleep","30"],"timeout":"200ms"}"#)
        let ids = try [exited, timedOut].map { try XCTUnwrap($0.json["id"] as? String, $0.text) }
        for id in ids { _ = try waitForFinal(client, id) }

        var lines: [[String: Any]] = []
        XCTAssertTrue(waitUntil {
            lines = self.jsonLines(agent.output)
            return lines.filter { $0["message"] as? String == "job ended" }.count == 2
        }, agent.output)

        let startup = try XCTUnwrap(lines.first { $0["message"] as? String == "corral agent started" }, agent.output)
        XCTAssertEqual(startup["level"] as? String, "info")
        XCTAssertEqual(startup["logger"] as? String, "corral.agent")
        XCTAssertNotNil(startup["time"] as? String)
        XCTAssertEqual(startup["listen"] as? String, "127.0.0.1:\(agent.port)")
        XCTAssertEqual(startup["data_dir"] as? String, dataDirectory)
        XCTAssertEqual(startup["max_jobs"] as? Int, 64)
        XCTAssertEqual(startup["pid"] as? Int, Int(agent.pid))
        for key in ["version", "host", "containment"] { XCTAssertNotNil(startup[key] as? String, key) }

        // /healthz says the same of the agent.
        let health = try client.get("/healthz").json
        XCTAssertEqual(health["status"] as? String, "ok")
        for key in ["version", "host", "containment"] { XCTAssertEqual(health[key] as? String, startup[key] as? String, key) }
        XCTAssertEqual(health["data_dir"] as? String, dataDirectory)
        XCTAssertEqual(health["max_jobs"] as? Int, 64)

        for id in ids {
            let started = lines.filter { $0["message"] as? String == "job started" && $0["job"] as? String == id }
            XCTAssertEqual(started.count, 1, "\(lines)")
            XCTAssertGreaterThan(started.first?["pid"] as? Int ?? 0, 1)
        }
        let ended = Dictionary(uniqueKeysWithValues: lines.filter { $0["message"] as? String == "job ended" }
            .map { ($0["job"] as? String ?? "", $0) })
        XCTAssertEqual(ended[ids[0]]?["outcome"] as? String, "exited")
        XCTAssertEqual(ended[ids[0]]?["exit_code"] as? Int, 3)
        XCTAssertNotNil(ended[ids[0]]?["duration_s"] as? Double)
        XCTAssertEqual(ended[ids[1]]?["outcome"] as? String, "timed_out")
        XCTAssertNotNil(ended[ids[1]]?["overshoot_s"] as? Double, "\(String(describing: ended[ids[1]]))")

        // Debug: a line per request and per submit.
        XCTAssertTrue(lines.contains { $0["message"] as? String == "request" && $0["method"] as? String == "POST"
            && $0["path"] as? String == "/v1/jobs" && $0["status"] as? Int == 201 }, agent.output)
        XCTAssertTrue(lines.contains { $0["message"] as? String == "job submitted" && $0["job"] as? String == ids[0] })
        // Every line the agent wrote is one JSON object.
        let other = agent.output.split(separator: "\n").filter { !$0.hasPrefix("{") && !$0.hasPrefix("corral agent: listening") }
        XCTAssertEqual(other, [], agent.output)
    }

    func testTextLogByDefaultWithoutRequestLines() throws {
        let agent = try startAgent()
        let created = try agent.client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        let id = try XCTUnwrap(created.json["id"] as? String, created.text)
        _ = try waitForFinal(agent.client, id)
        XCTAssertTrue(waitUntil { agent.output.contains("job ended") }, agent.output)
        XCTAssertTrue(agent.output.contains("corral agent started"), agent.output)
        XCTAssertTrue(agent.output.contains("job started"), agent.output)
        XCTAssertTrue(agent.output.contains("job=\(id)") || agent.output.contains("job: \(id)"), agent.output)
        XCTAssertFalse(agent.output.contains("{\"time\""), agent.output)
        XCTAssertFalse(agent.output.contains(" request "), agent.output)
    }
}
