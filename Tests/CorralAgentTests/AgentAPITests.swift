import CorralTestSupport
import Foundation
import XCTest

/// The HTTP API end to end: a real agent process, real sockets, real jobs.
final class AgentAPITests: AgentTestCase {
    func testSubmitPollListOutputAndEvents() throws {
        let agent = try startAgent()
        let client = agent.client
        let created = try client.post("/v1/jobs", json: #"{"id":"greeting","shell":"echo one; echo two >&2; echo three","timeout":"30s"}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap(created.json["id"] as? String)
        XCTAssertEqual(created.headers["location"], "/v1/jobs/\(id)")
        XCTAssertEqual(created.json["name"] as? String, "greeting")
        XCTAssertTrue(["queued", "running"].contains(created.json["state"] as? String ?? ""), created.text)

        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "exited")
        XCTAssertEqual(job["exit_code"] as? Int, 0)
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        XCTAssertEqual(result["stdout"] as? String, "one\nthree\n")
        XCTAssertEqual(result["stderr"] as? String, "two\n")

        XCTAssertEqual(try client.get("/v1/jobs/\(id)/output?stream=stdout").text, "one\nthree\n")
        XCTAssertEqual(try client.get("/v1/jobs/\(id)/output?stream=stderr").text, "two\n")
        XCTAssertEqual(try client.get("/v1/jobs/\(id)/output").text.count, "one\ntwo\nthree\n".count)

        // The whole stream of a finished job: every chunk, then the result, then the end.
        let events = try client.events("/v1/jobs/\(id)/events")
        XCTAssertEqual(events.status, 200)
        XCTAssertEqual(events.headers["content-type"], "text/event-stream")
        let parsed = SSE.parse(events.text)
        let outputs = parsed.filter { $0.event == "output" }
        XCTAssertEqual(outputs.map(\.id), (1...outputs.count).map { String($0) })
        XCTAssertEqual(outputs.compactMap { $0.json["text"] as? String }.joined().count, "one\ntwo\nthree\n".count)
        XCTAssertEqual(parsed.last?.event, "result")
        XCTAssertEqual(parsed.last?.json["state"] as? String, "exited")

        // Resume after the first chunk: only the later ones, then the result.
        let resumed = SSE.parse(try client.events("/v1/jobs/\(id)/events", headers: ["Last-Event-ID": "1"]).text)
        XCTAssertEqual(resumed.filter { $0.event == "output" }.map(\.id), outputs.dropFirst().map(\.id))
        XCTAssertEqual(resumed.last?.event, "result")

        // The list: newest first, paginated with `after`.
        let second = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        let secondID = try XCTUnwrap(second.json["id"] as? String)
        _ = try waitForFinal(client, secondID)
        let page = try client.get("/v1/jobs?limit=1")
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual((page.json["jobs"] as? [[String: Any]])?.map { $0["id"] as? String }, [secondID])
        let next = try XCTUnwrap(page.json["next"] as? String)
        let older = try client.get("/v1/jobs?limit=1&after=\(next)")
        XCTAssertEqual((older.json["jobs"] as? [[String: Any]])?.map { $0["id"] as? String }, [id])
        let finals = try client.get("/v1/jobs?state=exited")
        XCTAssertEqual((finals.json["jobs"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual((try client.get("/v1/jobs?state=running").json["jobs"] as? [[String: Any]])?.count, 0)
    }

    func testEventsStreamOutputLiveThenResumeWhileRunning() throws {
        let agent = try startAgent()
        let client = agent.client
        let gate = scratch.appendingPathComponent("gate").path
        let spec = #"{"shell":"echo first; while [ ! -e '\#(gate)' ]; do sleep 0.05; done; echo second","timeout":"60s"}"#
        let id = try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String)

        // The first line arrives while the job is still blocked on the gate.
        let live = try client.openEvents("/v1/jobs/\(id)/events")
        defer { live.close() }
        let early = try live.readResponse(until: { $0.contains("first") })
        XCTAssertTrue(early.text.contains("\"text\":\"first\\n\""), early.text)
        XCTAssertFalse(early.text.contains("second"))
        XCTAssertEqual(try client.get("/v1/jobs/\(id)").json["state"] as? String, "running")

        // A second client resuming after event 1 while the job runs gets only what follows.
        let resumer = try client.openEvents("/v1/jobs/\(id)/events", headers: ["Last-Event-ID": "1"])
        defer { resumer.close() }
        _ = FileManager.default.createFile(atPath: gate, contents: nil)
        let rest = SSE.parse(try live.readResponse(until: nil).text)
        XCTAssertEqual(rest.filter { $0.event == "output" }.compactMap { $0.json["text"] as? String }, ["first\n", "second\n"])
        XCTAssertEqual(rest.last?.event, "result")
        let resumed = SSE.parse(try resumer.readResponse(until: nil).text)
        XCTAssertEqual(resumed.filter { $0.event == "output" }.compactMap { $0.json["text"] as? String }, ["second\n"])
        XCTAssertEqual(resumed.last?.json["state"] as? String, "exited")
    }

    func testCancelStopsTheWholeGroup() throws {
        let agent = try startAgent()
        let client = agent.client
        let id = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"sleep 300 & sleep 300; wait","timeout":"10m"}"#).json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).filter { $0.hasSuffix(" sleep") }.count == 2 })

        let cancelled = try client.delete("/v1/jobs/\(id)")
        XCTAssertEqual(cancelled.status, 202, cancelled.text)
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "cancelled")
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).isEmpty }, "\(jobProcesses(of: agent))")

        let again = try client.delete("/v1/jobs/\(id)")
        XCTAssertEqual(again.status, 409)
        XCTAssertEqual(again.errorCode, "already_final")
        XCTAssertEqual(try client.delete("/v1/jobs/j999999").status, 404)
    }

    func testSeedScenarioTimesOutWithItsOutputAndNothingLeft() throws {
        let agent = try startAgent()
        let client = agent.client
        let script = AgentTestCase.repositoryRoot.appendingPathComponent("examples/seed/sleep.sh").path
        let created = try client.post("/v1/jobs", json: #"{"argv":["\#(script)"],"timeout":"2s","kill_after":"1s"}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap(created.json["id"] as? String)
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "timed_out")
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        XCTAssertEqual(result["outcome"] as? String, "timed_out")
        XCTAssertTrue((result["stdout"] as? String ?? "").contains("in sleep"), "\(result)")
        XCTAssertTrue(try client.get("/v1/jobs/\(id)/output").text.contains("in sleep"))
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).isEmpty }, "\(jobProcesses(of: agent))")
        let metrics = try client.get("/metrics").text
        XCTAssertTrue(metrics.contains("corral_jobs_finished_total{outcome=\"timed_out\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("corral_deadline_overshoot_seconds_count 1"), metrics)
    }

    func testErrorsAreJSONWithTheRightStatus() throws {
        let agent = try startAgent(["--max-body", "2KiB", "--max-jobs", "1", "--max-queued", "1"])
        let client = agent.client

        let unknownField = try client.post("/v1/jobs", json: #"{"argv":["true"],"timout":"1s"}"#)
        XCTAssertEqual(unknownField.status, 400)
        XCTAssertEqual(unknownField.errorCode, "invalid_spec")
        XCTAssertEqual((unknownField.json["error"] as? [String: Any])?["field"] as? String, "timout")
        let badJSON = try client.post("/v1/jobs", json: "{not json")
        XCTAssertEqual(badJSON.status, 400)
        let badTimeout = try client.post("/v1/jobs", json: #"{"argv":["true"],"timeout":"soon"}"#)
        XCTAssertEqual((badTimeout.json["error"] as? [String: Any])?["field"] as? String, "timeout")
        XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"]}"#, headers: ["Content-Type": "text/plain"]).status, 415)
        let tooLarge = try client.post("/v1/jobs", json: #"{"shell":"echo \#(String(repeating: "x", count: 4000))"}"#)
        XCTAssertEqual(tooLarge.status, 413)
        XCTAssertEqual(tooLarge.errorCode, "too_large")
        XCTAssertEqual(try client.get("/v1/jobs/j12345").status, 404)
        XCTAssertEqual(try client.get("/v1/nothing").errorCode, "not_found")
        XCTAssertEqual(try client.get("/v1/jobs?state=sleeping").status, 400)
        XCTAssertEqual(try client.get("/v1/jobs?limit=0").status, 400)
        XCTAssertEqual(try client.get("/v1/jobs/j12345/events").status, 404)

        // Idempotency: the same key and spec give the same job; another spec is a conflict.
        let spec = #"{"shell":"sleep 30","timeout":"60s"}"#
        let first = try client.post("/v1/jobs", json: spec, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(first.status, 201)
        // A bad Last-Event-ID on a job that exists: 400 for the header, not 404.
        let firstJob = try XCTUnwrap(first.json["id"] as? String)
        let badResume = try client.get("/v1/jobs/\(firstJob)/events", headers: ["Last-Event-ID": "x"])
        XCTAssertEqual(badResume.status, 400, badResume.text)
        XCTAssertEqual(badResume.errorCode, "bad_last_event_id")
        XCTAssertEqual(try client.get("/v1/jobs/\(firstJob)/events?last_event_id=-1").errorCode, "bad_last_event_id")
        let replay = try client.post("/v1/jobs", json: spec, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(replay.status, 200)
        XCTAssertEqual(replay.json["id"] as? String, first.json["id"] as? String)
        let conflict = try client.post("/v1/jobs", json: #"{"shell":"sleep 31"}"#, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(conflict.status, 409)
        XCTAssertEqual(conflict.errorCode, "idempotency_conflict")
        // Keys must be printable ASCII: bytes that are not UTF-8 reach the
        // handler as U+FFFD, so two different keys would read as one.
        for key: [UInt8] in [[0x6B, 0xFF], [0x6B, 0xFE], Array("ключ".utf8), [0x6B, 0x09, 0x6B], []] {
            let body = Array(spec.utf8)
            let request = Array("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(body.count)\r\nIdempotency-Key: ".utf8) + key + Array("\r\n\r\n".utf8) + body
            let answer = try HTTPClient.raw(port: agent.port, request)
            XCTAssertTrue(answer.contains(" 400 ") && answer.contains("printable ASCII"), "key \(key): \(answer.prefix(300))")
        }
        XCTAssertEqual(try client.post("/v1/jobs", json: spec, headers: ["Idempotency-Key": String(repeating: "k", count: 201)]).status, 400)
        // Two headers would read as one key "a, b": refused, not merged.
        let body = Array(spec.utf8)
        let twice = try HTTPClient.raw(port: agent.port, Array("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(body.count)\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\n\r\n".utf8) + body)
        XCTAssertTrue(twice.contains(" 400 ") && twice.contains("one Idempotency-Key header"), String(twice.prefix(300)))

        // One job runs (--max-jobs 1), one waits (--max-queued 1), the next is refused.
        let firstID = try XCTUnwrap(first.json["id"] as? String)
        XCTAssertTrue(waitForState(client, firstID, "running"))
        let waiting = try client.post("/v1/jobs", json: spec)
        XCTAssertEqual(waiting.status, 201)
        XCTAssertEqual(try client.get("/v1/jobs/\(waiting.json["id"] as? String ?? "")").json["state"] as? String, "queued")
        let refused = try client.post("/v1/jobs", json: spec)
        XCTAssertEqual(refused.status, 429)
        XCTAssertEqual(refused.errorCode, "queue_full")
        for job in [firstID, waiting.json["id"] as? String ?? ""] { XCTAssertEqual(try client.delete("/v1/jobs/\(job)").status, 202) }
        XCTAssertEqual(try waitForFinal(client, firstID)["state"] as? String, "cancelled")
    }

    /// `--max-queued` bounds the jobs that wait for a run slot, not those a
    /// free slot takes at once: with 0, a burst as large as the free slots
    /// is taken whole (it was refused whole, 429 for every job), and the
    /// next one is refused.
    func testJobsThatFreeSlotsTakeDoNotCountAgainstMaxQueued() throws {
        let agent = try startAgent(["--max-jobs", "4", "--max-queued", "0"])
        let client = agent.client
        var ids: [String] = []
        for _ in 0..<4 {
            let taken = try client.post("/v1/jobs", json: #"{"shell":"sleep 300","timeout":"10m"}"#)
            XCTAssertEqual(taken.status, 201, taken.text)
            ids.append(taken.json["id"] as? String ?? "")
        }
        let refused = try client.post("/v1/jobs", json: #"{"shell":"sleep 300","timeout":"10m"}"#)
        XCTAssertEqual(refused.status, 429, refused.text)
        XCTAssertEqual(refused.errorCode, "queue_full")
        for id in ids { XCTAssertTrue(waitForState(client, id, "running")) }
        for id in ids { XCTAssertEqual(try client.delete("/v1/jobs/\(id)").status, 202) }
        for id in ids { XCTAssertEqual(try waitForFinal(client, id)["state"] as? String, "cancelled") }
    }

    /// Text a client sends reaches the log with its control characters
    /// escaped: a newline in a working directory, an argv or an id cannot
    /// start a log line of the client's own.
    func testClientTextCannotForgeLogLines() throws {
        let agent = try startAgent(["--log-level", "debug"])
        let client = agent.client
        let forged = "\n2026-01-01T00:00:00+0000 critical corral.agent: FORGED"
        let bodies: [[String: Any]] = [["shell": "true", "cwd": "/nonexistent" + forged],
                                       ["argv": ["/nonexistent" + forged]],
                                       ["shell": "true # " + forged]]
        for object in bodies {
            let body = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            let submitted = try client.post("/v1/jobs", json: body)
            XCTAssertEqual(submitted.status, 201, submitted.text)
            _ = try waitForFinal(client, submitted.json["id"] as? String ?? "")
        }
        XCTAssertTrue(waitUntil { agent.output.contains("FORGED") }, agent.output)
        for line in agent.output.split(separator: "\n") where line.contains("FORGED") {
            XCTAssertFalse(line.hasPrefix("2026-01-01"), "a forged line: \(line)")
            XCTAssertTrue(line.contains("\\n2026-01-01"), "escaped: \(line)")
        }
    }

    func testGracefulShutdownAnswers503ThenRecordsEveryResult() throws {
        let agent = try startAgent(["--shutdown-grace", "2s"])
        let client = agent.client
        let quick = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"sleep 0.5; echo finished in time"}"#).json["id"] as? String)
        let slow = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"echo started; sleep 300","timeout":"10m"}"#).json["id"] as? String)
        XCTAssertTrue(waitForState(client, slow, "running"))

        agent.terminate()
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").status) == 503 })
        let refused = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.errorCode, "shutting_down")
        let result = try XCTUnwrap(agent.waitForExit())
        guard case .exited(0) = result.outcome else { return XCTFail("agent: \(result.outcome) \(result.stderr.text)") }

        // Restarted on the same journal: both results are there, nothing is lost.
        let again = try startAgent()
        let quickJob = try again.client.get("/v1/jobs/\(quick)").json
        XCTAssertEqual(quickJob["state"] as? String, "exited")
        XCTAssertEqual((quickJob["result"] as? [String: Any])?["stdout"] as? String, "finished in time\n")
        let slowJob = try again.client.get("/v1/jobs/\(slow)").json
        XCTAssertEqual(slowJob["state"] as? String, "cancelled")
        XCTAssertEqual((slowJob["result"] as? [String: Any])?["stdout"] as? String, "started\n")
    }
}
