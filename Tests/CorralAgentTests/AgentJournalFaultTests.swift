import CorralTestSupport
import Foundation
import GRDB
import XCTest
@testable import CorralAgent

/// Issue 13, item 4: a journal that cannot be written (a full disk, a
/// deleted file) is loud and bounded: jobs are refused, `/healthz` says
/// why, nothing is lost once space returns, and shutdown ends in time.
final class AgentJournalFaultTests: AgentTestCase {
    /// A spec printing `lines` numbered lines, one every 20 ms.
    private func printer(_ lines: Int) -> String {
        #"{"shell":"i=0; while [ $i -lt \#(lines) ]; do i=$((i+1)); echo line $i; sleep 0.02; done; echo done","timeout":"120s"}"#
    }

    /// Waits until `/healthz` answers 503 `degraded` with a reason that
    /// contains `reason`, then checks that a submit is refused with 503
    /// `journal_unavailable`.
    private func expectDegraded(_ client: HTTPClient, reason: String, upTo limit: Duration = .seconds(30),
                                file: StaticString = #filePath, line: UInt = #line) throws {
        var health = HTTPClient.Response(status: 0, headers: [:], body: [])
        XCTAssertTrue(waitUntil(upTo: limit) { health = (try? client.get("/healthz")) ?? health; return health.status == 503 },
                      "healthz stayed \(health.status) \(health.text)", file: file, line: line)
        XCTAssertEqual(health.json["status"] as? String, "degraded", health.text, file: file, line: line)
        XCTAssertTrue((health.json["reason"] as? String ?? "").contains(reason), health.text, file: file, line: line)
        let refused = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        XCTAssertEqual(refused.status, 503, refused.text, file: file, line: line)
        XCTAssertEqual(refused.errorCode, "journal_unavailable", file: file, line: line)
    }

    func testFullDiskRefusesJobsThenCommitsEverythingWhenSpaceReturns() throws {
        let disk = try SmallFileSystem.mount(at: scratch.appendingPathComponent("small").path, megabytes: 16, for: self)
        let data = disk.path + "/data"
        let agent = try startAgent(dataDirectory: data)
        let client = agent.client
        var ids: [String] = []
        for _ in 0..<4 {
            let created = try client.post("/v1/jobs", json: printer(150))
            XCTAssertEqual(created.status, 201, created.text)
            ids.append(try XCTUnwrap(created.json["id"] as? String))
        }
        for id in ids { XCTAssertTrue(waitForState(client, id, "running")) }

        let filled = disk.fill()
        XCTAssertGreaterThan(filled, 0)
        // The next commit fails: degraded, with the reason, and jobs refused.
        try expectDegraded(client, reason: "full")
        XCTAssertTrue(agent.output.contains("journal unavailable"), agent.output)

        // The jobs end meanwhile; nothing of them can be committed yet.
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).isEmpty }, "\(jobProcesses(of: agent))")
        usleep(500_000)

        disk.remove()
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").status) == 200 }, (try? client.get("/healthz").text) ?? "")
        XCTAssertTrue(agent.output.contains("journal writable again"), agent.output)
        for id in ids {
            let job = try waitForFinal(client, id)
            XCTAssertEqual(job["state"] as? String, "exited", "\(job)")
            let stdout = (job["result"] as? [String: Any])?["stdout"] as? String ?? ""
            XCTAssertTrue(stdout.hasPrefix("line 1\nline 2\n") && stdout.hasSuffix("line 150\ndone\n"), "\(id): \(stdout.suffix(200))")
            XCTAssertEqual(try client.get("/v1/jobs/\(id)/output?stream=stdout").text, stdout)
        }
        let again = try client.post("/v1/jobs", json: #"{"argv":["echo","after"]}"#)
        XCTAssertEqual(again.status, 201, again.text)

        // And from the journal itself, after a clean shutdown: no job lost.
        agent.terminate()
        guard case .exited(0)? = agent.waitForExit()?.outcome else {
            return XCTFail("agent: \(String(describing: agent.waitForExit()?.outcome)) \(agent.output)")
        }
        let states = try DatabaseQueue(path: data + "/journal.sqlite").read { db in
            try String.fetchAll(db, sql: "SELECT state FROM jobs")
        }
        XCTAssertEqual(states, Array(repeating: "exited", count: ids.count + 1))
    }

    func testSigtermWhileFullExitsInTimeNamingWhatIsNotRecorded() throws {
        let disk = try SmallFileSystem.mount(at: scratch.appendingPathComponent("small").path, megabytes: 16, for: self)
        let data = disk.path + "/data"
        let agent = try startAgent(["--shutdown-grace", "2s"], dataDirectory: data)
        let client = agent.client
        let quick = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"sleep 1; echo quick done"}"#).json["id"] as? String)
        let slow = try XCTUnwrap(try client.post("/v1/jobs", json: printer(100_000)).json["id"] as? String)
        XCTAssertTrue(waitForState(client, slow, "running"))
        disk.fill()
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").status) == 503 })

        let stopped = ContinuousClock.now
        agent.terminate()
        let result = try XCTUnwrap(agent.waitForExit(upTo: .seconds(60)))
        let took = ContinuousClock.now - stopped
        XCTAssertLessThan(took, .seconds(2 + 10), "grace 2 s + 10 s")
        guard case .exited(let code) = result.outcome, code != 0 else {
            return XCTFail("expected a non-zero exit: \(result.outcome) \(agent.output)")
        }
        XCTAssertTrue(agent.output.contains("not recorded in the journal"), agent.output)
        XCTAssertTrue(agent.output.contains("the results of \(quick), \(slow)"), agent.output)
        print("SIGTERM while full: exited \(code) after \(took)")
    }

    func testDeletedJournalRefusesJobs() throws {
        let agent = try startAgent()
        let client = agent.client
        XCTAssertEqual(try client.get("/healthz").status, 200)
        XCTAssertEqual(unlink(dataDirectory + "/journal.sqlite"), 0)
        try expectDegraded(client, reason: "was deleted", upTo: .seconds(10))
        XCTAssertTrue(agent.output.contains("was deleted"), agent.output)
    }

    func testReplacedJournalRefusesJobsAndTheExitSaysSo() throws {
        let agent = try startAgent()
        let client = agent.client
        let journal = dataDirectory + "/journal.sqlite"
        try FileManager.default.copyItem(atPath: journal, toPath: journal + ".copy")
        XCTAssertEqual(rename(journal + ".copy", journal), 0)
        try expectDegraded(client, reason: "was replaced", upTo: .seconds(10))

        agent.terminate()
        let result = try XCTUnwrap(agent.waitForExit())
        guard case .exited(let code) = result.outcome, code != 0 else { return XCTFail("\(result.outcome) \(agent.output)") }
        XCTAssertTrue(agent.output.contains("what was recorded since is not in the journal file"), agent.output)
    }
}
