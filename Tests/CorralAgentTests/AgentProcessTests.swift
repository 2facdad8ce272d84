import Foundation
import XCTest

/// The agent as a process among others: one agent per data directory,
/// SIGHUP, and a closed stdout.
final class AgentProcessTests: AgentTestCase {
    func testSecondAgentOnTheSameDataDirectoryIsRefusedAndTheFirstRunsOn() async throws {
        let first = try startAgent()
        let client = first.client
        let submitted = try client.post("/v1/jobs", json: #"{"shell":"sleep 1.5; echo done; exit 3"}"#)
        XCTAssertEqual(submitted.status, 201, submitted.text)
        let id = try XCTUnwrap(submitted.json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))

        let second = try await corral(["agent", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory])
        guard case .exited(125) = second.outcome else { return XCTFail("\(second.outcome) \(second.stderr.text)") }
        XCTAssertTrue(second.stderr.text.contains("is in use by another corral agent (pid \(first.pid))"), second.stderr.text)
        XCTAssertFalse(second.stdout.text.contains("listening"), second.stdout.text)

        // The first agent's job was not taken for lost: it ends as it would have.
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "exited", "\(job)")
        XCTAssertEqual(job["exit_code"] as? Int, 3, "\(job)")
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "done\n", "\(job)")
        XCTAssertEqual(try client.get("/healthz").status, 200)

        // Released with the first agent: the next one starts.
        first.terminate()
        XCTAssertNotNil(first.waitForExit())
        let next = try startAgent()
        XCTAssertEqual(try next.client.get("/v1/jobs/\(id)").json["state"] as? String, "exited")
    }

    func testSighupIsLoggedAndIgnored() throws {
        let agent = try startAgent()
        for _ in 0..<2 {
            XCTAssertEqual(kill(agent.pid, SIGHUP), 0)
            XCTAssertTrue(waitUntil(upTo: .seconds(10)) { agent.output.contains("SIGHUP ignored") }, agent.output)
        }
        usleep(200_000)
        XCTAssertFalse(agent.hasExited, agent.output)
        XCTAssertEqual(try agent.client.get("/healthz").status, 200)
        let created = try agent.client.post("/v1/jobs", json: #"{"argv":["echo","after hangup"]}"#)
        let job = try waitForFinal(agent.client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual(job["state"] as? String, "exited")
        // SIGTERM still stops it gracefully.
        agent.terminate()
        guard case .exited(0)? = agent.waitForExit()?.outcome else { return XCTFail("\(String(describing: agent.waitForExit()?.outcome))") }
    }

    func testStartsAndAnswersWithStdoutClosed() throws {
        let port = try freePort()
        let agent = try launch("/bin/sh", ["-c", #"exec "$0" "$@" >&-"#, AgentTestCase.binary, "agent",
                                           "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory])
        let client = HTTPClient(port: port)
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").status) == 200 }, "not answering: \(agent.output)")
        let created = try client.post("/v1/jobs", json: #"{"argv":["echo","no stdout"]}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let job = try waitForFinal(client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "no stdout\n")
        // Descriptor 1 is /dev/null, not the journal or a socket.
        let one = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(agent.pid)/fd/1")
        XCTAssertEqual(one, "/dev/null")
        XCTAssertFalse(agent.hasExited)
    }
}
