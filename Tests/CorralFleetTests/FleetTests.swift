import CorralTestSupport
import Foundation
import XCTest

/// A run's life across real agents: targeting, outcomes and output,
/// deadlines, dead agents, cancel, the window and the error budget.
final class FleetTests: FleetTestCase {
    /// Each job says which host ran it: its working directory is the
    /// agent's, named after it.
    static let hostJob = #"{"shell":"echo out $(basename \"$PWD\"); echo err >&2; exit 3","timeout":"30s"}"#

    func testRunByNameAndByLabelReachesEveryHostWithItsOutputAndOutcome() throws {
        for (name, role) in [("web1", "web"), ("web2", "web"), ("db1", "db"), ("db2", "db"), ("cache1", "cache")] {
            try startAgent(name, labels: ["role=\(role)", "dc=x"])
        }
        let byName = try createRun(#"{"name":"by name","target":{"hosts":["web1","db1","db2","cache1"]},"job":\#(FleetTests.hostJob)}"#)
        let byLabel = try createRun(#"{"target":{"labels":{"role":"web"}},"job":\#(FleetTests.hostJob)}"#)
        var ids: [String] = []
        var attempts: [String] = []
        for (run, hosts) in [(byName, ["web1", "db1", "db2", "cache1"]), (byLabel, ["web1", "web2"])] {
            let view = try waitForRun(run)
            XCTAssertEqual(view["state"] as? String, "done")
            let tasks = tasks(view)
            XCTAssertEqual(Set(tasks.keys), Set(hosts), "the target is resolved to exactly these hosts")
            for (host, task) in tasks {
                XCTAssertEqual(task["state"] as? String, "exited", "\(host): \(task)")
                XCTAssertEqual(task["exit_code"] as? Int, 3, "\(host)")
                let result = task["result"] as? [String: Any] ?? [:]
                XCTAssertEqual(result["outcome"] as? String, "exited", "\(host): \(result)")
                XCTAssertEqual(result["stdout"] as? String, "out \(host)\n", "\(host): \(result)")
                XCTAssertEqual(result["stderr"] as? String, "err\n", "\(host)")
                // The same output, shipped in chunks as it came.
                XCTAssertEqual(try output(run, host, stream: "stdout")["output"] as? String, "out \(host)\n")
                XCTAssertEqual(try output(run, host, stream: "stderr")["output"] as? String, "err\n")
                let combined = try output(run, host)
                XCTAssertEqual(combined["final"] as? Bool, true)
                XCTAssertEqual((combined["output"] as? String)?.count, "out \(host)\nerr\n".count)
                let rest = try output(run, host, after: combined["next"] as? Int ?? 0)
                XCTAssertEqual(rest["output"] as? String, "", "nothing after the last chunk")
                ids.append(task["id"] as? String ?? "")
                attempts.append(task["attempt_id"] as? String ?? "")
            }
            XCTAssertEqual((view["counts"] as? [String: Int])?["exited"], hosts.count)
        }
        XCTAssertEqual(Set(ids).count, 6, "task ids unique across runs and hosts: \(ids)")
        XCTAssertEqual(Set(attempts).count, 6, "attempt ids unique: \(attempts)")
        // Each host's job is in its own journal, under the fleet attempt.
        let list = try request("GET", "/v1/runs")
        XCTAssertEqual((list.json["runs"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }, [byLabel, byName])
        let agents = try request("GET", "/v1/agents").json["agents"] as? [[String: Any]] ?? []
        XCTAssertEqual(agents.compactMap { $0["name"] as? String }, ["cache1", "db1", "db2", "web1", "web2"])
        XCTAssertEqual((agents.first?["labels"] as? [String: String])?["role"], "cache")
    }

    func testOutputIsTailedLiveAndCappedWithATruncationRecord() throws {
        try startAgent("o1", extra: ["--fleet-output-cap", "64KiB"])
        let live = try createRun(#"{"target":{"all":true},"job":{"shell":"echo line1; sleep 2; echo line2","timeout":"30s"}}"#)
        var first: [String: Any] = [:]
        XCTAssertTrue(waitUntil { first = (try? self.output(live, "o1")) ?? [:]; return first["output"] as? String == "line1\n" },
                      "the first line arrives while the job runs: \(first)")
        XCTAssertEqual(first["final"] as? Bool, false)
        var text = first["output"] as? String ?? ""
        var next = first["next"] as? Int ?? 0
        XCTAssertTrue(waitUntil {
            guard let more = try? self.output(live, "o1", after: next) else { return false }
            text += more["output"] as? String ?? ""
            next = more["next"] as? Int ?? next
            return more["final"] as? Bool == true
        })
        XCTAssertEqual(text, "line1\nline2\n", "each chunk once, in order")

        let big = try createRun(#"{"target":{"all":true},"job":{"shell":"head -c 300000 /dev/zero | tr '\\0' x","timeout":"30s"}}"#)
        let view = try waitForRun(big)
        let shipped = try output(big, "o1")
        let kept = (shipped["output"] as? String)?.utf8.count ?? -1
        let dropped = shipped["truncated_bytes"] as? Int ?? -1
        XCTAssertLessThanOrEqual(kept, 65_536, "the cap holds")
        XCTAssertGreaterThan(kept, 0)
        XCTAssertEqual(kept + dropped, 300_000, "the truncation record counts what was left out")
        let result = tasks(view)["o1"]?["result"] as? [String: Any] ?? [:]
        XCTAssertEqual((result["stdout"] as? String)?.utf8.count, 300_000, "the result still holds the whole output")
        XCTAssertEqual(try request("GET", "/v1/runs/\(big)/tasks/o1/output?stream=both").status, 400)
        XCTAssertEqual(try request("GET", "/v1/runs/\(big)/tasks/nohost/output").status, 404)
    }

    func testOutputStreamsAsServerSentEventsLiveAndResumes() throws {
        try startAgent("e1", extra: ["--fleet-output-cap", "64KiB"])
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo line1; sleep 2; echo line2 >&2; exit 4","timeout":"30s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.tasks(self.runView(run))["e1"]?["state"] as? String) == "running" })
        let client = HTTPClient(port: server.port)
        // Opened while the job runs: the first line comes before the job ends.
        var sawLineWhileRunning = false
        let stream = try client.events("/v1/runs/\(run)/tasks/e1/events") { text in
            if !sawLineWhileRunning, text.contains("line1") {
                sawLineWhileRunning = (try? self.tasks(self.runView(run))["e1"]?["state"] as? String) == "running"
            }
            return false
        }
        XCTAssertEqual(stream.status, 200)
        XCTAssertEqual(stream.headers["content-type"], "text/event-stream")
        XCTAssertTrue(sawLineWhileRunning, "the first chunk arrived while the job ran")
        let events = SSE.parse(stream.text)
        let outputs = events.filter { $0.event == "output" }
        XCTAssertEqual(outputs.map { $0.json["text"] as? String ?? "" }.joined(), "line1\nline2\n", "each chunk once, in order")
        XCTAssertEqual(outputs.map { $0.json["stream"] as? String ?? "" }, ["stdout", "stderr"])
        XCTAssertEqual(events.last?.event, "result")
        XCTAssertEqual(events.last?.json["state"] as? String, "exited")
        XCTAssertEqual(events.last?.json["exit_code"] as? Int, 4)
        // The result's id is `done`: an EventSource reconnecting with it is
        // told there is nothing more (204), not sent the result again.
        XCTAssertEqual(events.last?.id, "done")
        XCTAssertEqual(try client.get("/v1/runs/\(run)/tasks/e1/events", headers: ["Last-Event-ID": "done"]).status, 204)

        // Resumed after the first chunk: the rest, then the result.
        let resumed = SSE.parse(try client.events("/v1/runs/\(run)/tasks/e1/events",
                                                  headers: ["Last-Event-ID": outputs.first?.id ?? "0"]).text)
        XCTAssertEqual(resumed.filter { $0.event == "output" }.map { $0.json["text"] as? String ?? "" }, ["line2\n"])
        XCTAssertEqual(resumed.last?.event, "result")

        // Past the cap: a truncated event counts what the agent left out.
        let big = try createRun(#"{"target":{"all":true},"job":{"shell":"head -c 300000 /dev/zero | tr '\\0' x","timeout":"30s"}}"#)
        _ = try waitForRun(big)
        let capped = SSE.parse(try client.events("/v1/runs/\(big)/tasks/e1/events").text)
        let kept = capped.filter { $0.event == "output" }.map { ($0.json["text"] as? String ?? "").utf8.count }.reduce(0, +)
        let dropped = capped.first { $0.event == "truncated" }?.json["bytes"] as? Int ?? -1
        XCTAssertEqual(kept + dropped, 300_000, "\(kept) kept, \(dropped) dropped")
        XCTAssertEqual(capped.last?.event, "result")

        XCTAssertEqual(try client.get("/v1/runs/\(run)/tasks/nohost/events").status, 404)
        XCTAssertEqual(try client.get("/v1/runs/\(run)/tasks/e1/events", headers: ["Last-Event-ID": "-1"]).status, 400)
    }

    func testTimedOutJobOnThreeHostsKeepsItsOutputAndLeavesNothing() throws {
        for name in ["h1", "h2", "h3"] { try startAgent(name) }
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo started; sleep 60 & sleep 60; echo never","timeout":"1s"}}"#)
        let view = try waitForRun(run)
        for (host, task) in tasks(view) {
            XCTAssertEqual(task["state"] as? String, "timed_out", "\(host): \(task)")
            let result = task["result"] as? [String: Any] ?? [:]
            XCTAssertEqual(result["outcome"] as? String, "timed_out", "\(host)")
            XCTAssertEqual(result["stdout"] as? String, "started\n", "\(host)")
        }
        XCTAssertEqual(tasks(view).count, 3)
        XCTAssertEqual(view["errors"] as? Int, 3, "a timeout is an error")
        XCTAssertTrue(waitUntil(upTo: .seconds(10)) { self.jobProcesses().isEmpty }, "left: \(jobProcesses())")
    }

    func testAgentDownWhenTheRunIsCreatedIsUndeliveredAndNoError() throws {
        try startAgent("up1")
        try startAgent("up2")
        let gone = try startAgent("gone")
        gone.signal(SIGTERM)
        XCTAssertNotNil(gone.waitForExit())
        XCTAssertTrue(waitUntil { self.agentState("gone") == "down" }, "the reaper marks the silent agent down")
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"true"},"max_errors":0}"#)
        let view = try waitForRun(run)
        let tasks = tasks(view)
        XCTAssertEqual(tasks["gone"]?["state"] as? String, "undelivered", "\(tasks)")
        XCTAssertEqual(tasks["up1"]?["state"] as? String, "exited")
        XCTAssertEqual(tasks["up2"]?["state"] as? String, "exited")
        XCTAssertEqual(view["state"] as? String, "done", "undelivered does not count against max_errors 0")
        XCTAssertEqual(view["errors"] as? Int, 0)
    }

    func testCancelStopsEveryRunningJobGroup() throws {
        for name in ["c1", "c2", "c3"] { try startAgent(name) }
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo started; sleep 120 & sleep 120","timeout":"5m"}}"#)
        XCTAssertTrue(waitUntil {
            let counts = (try? self.runView(run)["counts"] as? [String: Int]) ?? nil
            return counts?["running"] == 3 && self.jobProcesses().count >= 6
        }, "every host runs the job: \((try? runView(run)) ?? [:])")
        let (status, _) = try request("DELETE", "/v1/runs/\(run)")
        XCTAssertEqual(status, 202)
        let view = try waitForRun(run, upTo: .seconds(30))
        XCTAssertEqual(view["state"] as? String, "cancelled")
        for (host, task) in tasks(view) {
            XCTAssertEqual(task["state"] as? String, "cancelled", "\(host): \(task)")
            XCTAssertEqual(task["note"] as? String, "cancelled through the fleet server (DELETE /v1/runs/\(run))")
            XCTAssertEqual((task["result"] as? [String: Any])?["stdout"] as? String, "started\n")
        }
        XCTAssertTrue(waitUntil(upTo: .seconds(10)) { self.jobProcesses().isEmpty }, "left: \(jobProcesses())")
        XCTAssertEqual(try request("DELETE", "/v1/runs/999999").status, 404)
        XCTAssertEqual(try request("DELETE", "/v1/runs/\(run)/tasks/nohost").status, 404)
    }

    func testWindowIsNeverExceededAndTheErrorBudgetSkipsTheRest() throws {
        let names = (1...10).map { "w\($0)" }
        for name in names { try startAgent(name) }
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"sleep 0.4"},"max_concurrency":2}"#)
        var most = 0
        var view: [String: Any] = [:]
        XCTAssertTrue(waitUntil(upTo: .seconds(60)) {
            view = (try? self.runView(run)) ?? [:]
            let counts = view["counts"] as? [String: Int] ?? [:]
            most = max(most, counts["running", default: 0] + counts["queued", default: 0])
            return !(view["finished_at"] is NSNull) && view["finished_at"] != nil
        })
        XCTAssertLessThanOrEqual(most, 2, "the window of 2 held")
        XCTAssertGreaterThan(most, 0)
        XCTAssertEqual((view["counts"] as? [String: Int])?["exited"], 10, "\(view)")

        let failing = try createRun(#"{"target":{"all":true},"job":{"shell":"exit 1"},"max_concurrency":1,"max_errors":1}"#)
        let stopped = try waitForRun(failing)
        XCTAssertEqual(stopped["state"] as? String, "stopped", "\(stopped)")
        let counts = stopped["counts"] as? [String: Int] ?? [:]
        XCTAssertEqual(counts["exited"], 2, "the second failure is over the budget of 1: \(counts)")
        XCTAssertEqual(counts["skipped"], 8, "\(counts)")
        // Percentages resolve against the host count: 25% of 10 is 3 as a
        // window (rounded up), 2 as a budget (rounded down).
        let percent = try createRun(#"{"target":{"all":true},"job":{"shell":"true"},"max_concurrency":"25%","max_errors":"25%"}"#)
        let resolved = try runView(percent)
        XCTAssertEqual(resolved["max_concurrency"] as? Int, 3)
        XCTAssertEqual(resolved["max_errors"] as? Int, 2)
        _ = try waitForRun(percent)
    }

    func testBadRequestsAreRefusedAtTheEdge() throws {
        try startAgent("only")
        let cases: [(String, String)] = [
            (#"{"target":{"hosts":["nobody-here"]},"job":{"shell":"true"}}"#, "unknown_hosts"),
            (#"{"target":{"labels":{"role":"none"}},"job":{"shell":"true"}}"#, "no_hosts"),
            (#"{"target":{"all":true},"job":{"shell":"true","timeout":"soon"}}"#, "invalid_spec"),
            (#"{"target":{"all":true,"hosts":["only"]},"job":{"shell":"true"}}"#, "bad_request"),
            (#"{"target":{"all":true},"job":{"shell":"true"},"max_concurrency":0}"#, "bad_request"),
            (#"{"target":{"all":true},"job":{"shell":"true"},"max_errors":"101%"}"#, "bad_request"),
            (#"{"target":{"all":true},"job":{"shell":"true"},"extra":1}"#, "bad_request"),
            (#"{"target":{"all":true}"#, "bad_json"),
            // NUL, which PostgreSQL cannot store: a 400 here, never a 503
            // at the insert or a runs list that fails for every reader.
            (#"{"target":{"all":true},"job":{"shell":"true","stdin":"x\u0000"}}"#, "invalid_spec"),
            (#"{"target":{"all":true},"job":{"shell":"true","id":"a\u0000"}}"#, "invalid_spec"),
            (#"{"target":{"all":true},"job":{"shell":"true"},"name":"a\u0000b"}"#, "bad_request"),
        ]
        for (body, code) in cases {
            let (status, json) = try request("POST", "/v1/runs", json: body)
            XCTAssertEqual(status, 400, body)
            XCTAssertEqual((json["error"] as? [String: Any])?["code"] as? String, code, "\(body): \(json)")
        }
        XCTAssertEqual(try request("GET", "/v1/runs").status, 200, "the runs list still answers")
        // The same Idempotency-Key: the same run; with another body, 409.
        let body = #"{"target":{"all":true},"job":{"shell":"true"}}"#
        let first = try request("POST", "/v1/runs", json: body, headers: ["Idempotency-Key": "k1"])
        let again = try request("POST", "/v1/runs", json: body, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(first.status, 201)
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(first.json["id"] as? Int, again.json["id"] as? Int)
        let other = try request("POST", "/v1/runs", json: #"{"target":{"all":true},"job":{"shell":"false"}}"#,
                                headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(other.status, 409)
        // Printable ASCII only: two keys that differ in bytes that are not
        // UTF-8 would otherwise read as the same key (both U+FFFD).
        let run = first.json["id"] as? Int ?? 0
        for (key, path, json) in [([0x6B, 0xFF], "/v1/runs", body), ([0x6B, 0xFE], "/v1/runs", body),
                                  ([0x6B, 0x09, 0x6B], "/v1/runs", body), (Array("ключ".utf8), "/v1/runs/\(run)/rerun", #"{"hosts":"all"}"#)]
            as [([UInt8], String, String)] {
            let bytes = Array(json.utf8)
            let raw = Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(bytes.count)\r\nIdempotency-Key: ".utf8) + key + Array("\r\n\r\n".utf8) + bytes
            let answer = try HTTPClient.raw(port: server.port, raw)
            XCTAssertTrue(answer.contains(" 400 ") && answer.contains("printable ASCII"), "key \(key): \(answer.prefix(300))")
        }
        _ = try waitForRun(run)
    }
}
