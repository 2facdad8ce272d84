import Foundation
import XCTest
@testable import Corral

/// Draining: the agent stops taking jobs (503 `draining`), lets the running
/// and queued ones finish within --drain-timeout, and exits 0; SIGTERM
/// still cuts a drain short. All with real processes and signals.
final class AgentDrainTests: AgentTestCase {
    func testDrainCommandFinishesRunningAndQueuedJobsThenTheAgentExits() async throws {
        let agent = try startAgent(["--max-jobs", "1", "--drain-timeout", "120s"])
        let client = agent.client
        let first = try client.post("/v1/jobs", json: #"{"shell":"sleep 1; echo first"}"#)
        let second = try client.post("/v1/jobs", json: #"{"shell":"echo second"}"#)
        let ids = try [first, second].map { try XCTUnwrap($0.json["id"] as? String, $0.text) }
        XCTAssertTrue(waitForState(client, ids[0], "running"))

        var spec = JobSpec(.executable(AgentTestCase.binary, arguments: ["agent", "drain", "--data-dir", dataDirectory]))
        spec.timeout = .seconds(120)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        let runner = self.runner!
        let drain = Task { [spec] in try await runner.run(spec) }

        // While it drains: reads work, submits are refused saying why.
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").json["status"] as? String) == "draining" }, agent.output)
        let refused = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        XCTAssertEqual(refused.status, 503, refused.text)
        XCTAssertEqual(refused.errorCode, "draining", refused.text)
        XCTAssertTrue(refused.text.contains("finishes the jobs it has"), refused.text)

        let drained = try await drain.value
        guard case .exited(0) = drained.outcome else { return XCTFail("\(drained.outcome) \(drained.stderr.text)") }
        XCTAssertTrue(drained.stdout.text.contains("has exited"), drained.stdout.text)
        guard case .exited(0)? = agent.waitForExit()?.outcome else { return XCTFail("agent: \(agent.output)") }
        XCTAssertTrue(agent.output.contains("drained: every job finished"), agent.output)

        let next = try startAgent()
        for (id, text) in zip(ids, ["first\n", "second\n"]) {
            let job = try next.client.get("/v1/jobs/\(id)").json
            XCTAssertEqual(job["state"] as? String, "exited", "\(job)")
            XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, text, "\(job)")
        }
    }

    func testDrainStopsWhatOutlivesItsBound() throws {
        let agent = try startAgent(["--drain-timeout", "1s"])
        let created = try agent.client.post("/v1/jobs", json: #"{"argv":["sleep","300"]}"#)
        let id = try XCTUnwrap(created.json["id"] as? String, created.text)
        XCTAssertTrue(waitForState(agent.client, id, "running"))
        XCTAssertEqual(kill(agent.pid, SIGUSR1), 0)
        guard case .exited(0)? = agent.waitForExit()?.outcome else { return XCTFail("agent: \(agent.output)") }
        XCTAssertTrue(agent.output.contains("stopping 1 jobs still running after the drain's bound"), agent.output)
        XCTAssertTrue(jobProcesses(of: agent).isEmpty, "\(jobProcesses(of: agent))")
        let job = try startAgent().client.get("/v1/jobs/\(id)").json
        XCTAssertEqual(job["final"] as? Bool, true, "\(job)")
        XCTAssertNotEqual(job["state"] as? String, "lost", "\(job)")
        XCTAssertEqual(job["message"] as? String, "stopped by the agent's drain: --drain-timeout passed before the job ended", "\(job)")
    }

    func testSigtermCutsADrainShort() throws {
        let agent = try startAgent(["--drain-timeout", "1h", "--shutdown-grace", "1s"])
        let created = try agent.client.post("/v1/jobs", json: #"{"argv":["sleep","300"]}"#)
        let id = try XCTUnwrap(created.json["id"] as? String, created.text)
        XCTAssertTrue(waitForState(agent.client, id, "running"))
        XCTAssertEqual(kill(agent.pid, SIGUSR1), 0)
        XCTAssertTrue(waitUntil { agent.output.contains("SIGUSR1: draining") }, agent.output)
        XCTAssertFalse(agent.hasExited)
        agent.terminate()
        guard case .exited(0)? = agent.waitForExit()?.outcome else { return XCTFail("agent: \(agent.output)") }
        XCTAssertTrue(agent.output.contains("stopping 1 jobs still running"), agent.output)
        let job = try startAgent().client.get("/v1/jobs/\(id)").json
        XCTAssertEqual(job["final"] as? Bool, true, "\(job)")
        XCTAssertNotEqual(job["state"] as? String, "lost", "\(job)")
        XCTAssertEqual(job["message"] as? String, "stopped by the agent's shutdown: --shutdown-grace passed before the job ended", "\(job)")
    }

    func testDrainWithoutAnAgentSaysSo() async throws {
        let agent = try startAgent()
        agent.terminate()
        XCTAssertNotNil(agent.waitForExit())
        let result = try await corral(["agent", "drain", "--data-dir", dataDirectory])
        guard case .exited(125) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertTrue(result.stderr.text.contains("no agent is running on \(dataDirectory)"), result.stderr.text)
        let never = try await corral(["agent", "drain", "--data-dir", scratch.appendingPathComponent("never").path])
        guard case .exited(125) = never.outcome else { return XCTFail("\(never.outcome)") }
        XCTAssertTrue(never.stderr.text.contains("no agent has used"), never.stderr.text)
    }
}
