import Foundation
import Synchronization
import XCTest
import CorralTestSupport

/// The list's query parameters (`state` with `failed`, `q`, `limit`, the
/// cursors `after` and `since`) against hostile values, exact cursor
/// paging while jobs arrive, and the output's truncation marker and tail
/// through the API.
final class AgentListQueryTests: AgentTestCase {
    func testHostileQueryValuesAreRefusedWithAClearMessage() throws {
        let agent = try startAgent()
        let client = agent.client
        XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"]}"#).status, 201)
        let refused: [(String, String)] = [
            ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
            ("limit=99999999999999999999999", "limit"), ("limit=1e3", "limit"), ("limit=%20%35", "limit"),
            ("after=", "after"), ("after=j", "after"), ("after=jx", "after"), ("after=j-1", "after"), ("after=j+5", "after"),
            ("after=j1e3", "after"), ("after=k5", "after"), ("after=5", "after"), ("after=j%00", "after"), ("after=j%D9%A1%D9%A2", "after"),
            ("after=j9999999999999999999", "after"), ("after=j%205", "after"),
            ("since=j", "since"), ("since=j-3", "since"), ("since=J3", "since"), ("since=j3x", "since"),
            ("state=bogus", "state"), ("state=,", "state"), ("state=failed,", "state"), ("state=FAILED", "state"),
            ("state=" + String(repeating: "x", count: 5000), "state"),
            ("q=" + String(repeating: "q", count: 201), "q"), ("q=%00", "q"), ("q=echo%00zzzz", "q"),
            ("stream=both", ""),
        ]
        for (query, field) in refused {
            let path = query.hasPrefix("stream=") ? "/v1/jobs/j1/output?\(query)" : "/v1/jobs?\(query)"
            let answer = try client.get(path)
            XCTAssertEqual(answer.status, 400, "\(query): \(answer.text)")
            XCTAssertEqual(answer.errorCode, "bad_query", query)
            let error = answer.json["error"] as? [String: Any] ?? [:]
            XCTAssertEqual(error["field"] as? String, field.isEmpty ? "stream" : field, query)
            XCTAssertLessThan((error["message"] as? String ?? "").count, 300, "a short message: \(query)")
        }
        XCTAssertEqual(try client.get("/v1/jobs/j1/output?download=yes").status, 400)
        // Values that are odd but valid are answered, never a crash.
        for query in ["limit=1000", "limit=1", "after=j0", "since=j999999999999999999", "after=j000001",
                      "q=%25", "q=_", "q=%27%22", "q=%E2%80%A6", "q=" + String(repeating: "q", count: 200),
                      "state=failed,final,queued", "state=", "q="] {
            let answer = try client.get("/v1/jobs?\(query)")
            XCTAssertEqual(answer.status, 200, "\(query): \(answer.text)")
            XCTAssertNotNil(answer.json["jobs"] as? [Any], query)
        }
        XCTAssertEqual(try client.get("/healthz").status, 200, "still up")
    }

    func testFailedStateSearchAndCursorsAreExact() throws {
        let agent = try startAgent()
        let client = agent.client
        let specs = [#"{"argv":["true"],"id":"ok"}"#, #"{"shell":"exit 7","id":"seven"}"#, #"{"shell":"kill -KILL $$"}"#,
                     #"{"argv":["/nonexistent/x"],"id":"100%_literal"}"#, #"{"argv":["sleep","30"],"timeout":"200ms"}"#,
                     #"{"shell":"echo MiXeD-Case"}"#]
        var ids: [String] = []
        for spec in specs { ids.append(try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String)) }
        for id in ids { _ = try waitForFinal(client, id) }
        func listed(_ query: String) throws -> [String] {
            let answer = try client.get("/v1/jobs?\(query)")
            XCTAssertEqual(answer.status, 200, answer.text)
            return (answer.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        }
        XCTAssertEqual(try listed("state=failed"), [ids[3], ids[2], ids[1]])
        XCTAssertEqual(try listed("state=failed,timed_out"), [ids[4], ids[3], ids[2], ids[1]])
        XCTAssertEqual(try listed("state=signaled"), [ids[2]])
        XCTAssertEqual(try listed("q=mixed-case"), [ids[5]], "ASCII letters without case")
        XCTAssertEqual(try listed("q=%25_"), [ids[3]], "% and _ are literal, not wildcards")
        XCTAssertEqual(try listed("q=seven"), [ids[1]], "the name is searched")
        XCTAssertEqual(try listed("q=seven&state=exited"), [ids[1]])
        XCTAssertEqual(try listed("q=seven&state=signaled"), [])
        // `since` bounds the window from below, `after` from above.
        XCTAssertEqual(try listed("since=\(ids[3])"), [ids[5], ids[4], ids[3]])
        XCTAssertEqual(try listed("since=\(ids[1])&after=\(ids[4])"), [ids[3], ids[2], ids[1]])
        let list = try client.get("/v1/jobs?limit=2").json
        XCTAssertEqual(list["next"] as? String, ids[4])
        XCTAssertEqual((list["jobs"] as? [[String: Any]])?.first?["timeout_s"] as? Double, 3600, "the default timeout")
    }

    /// Cursor pages read while new jobs arrive: every job exactly once.
    func testCursorPagingWhileJobsArriveListsEachJobOnce() throws {
        let agent = try startAgent(["--max-jobs", "16"])
        let client = agent.client
        for _ in 1...120 { XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"]}"#).status, 201) }
        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try client.get("/v1/jobs?limit=25" + (cursor.map { "&after=\($0)" } ?? "")).json
            seen += (page["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page["next"] as? String
            pages += 1
            if pages == 2 { for _ in 1...10 { _ = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#) } }
        } while cursor != nil && pages < 20
        XCTAssertEqual(seen, (1...120).reversed().map { "j\($0)" }, "the pages continue from their cursor")
        // The window since the oldest, re-read: the 10 new ones and all the rest.
        let window = try client.get("/v1/jobs?limit=1000&since=j1").json["jobs"] as? [[String: Any]] ?? []
        XCTAssertEqual(window.compactMap { $0["id"] as? String }, (1...130).reversed().map { "j\($0)" })
    }

    func testTruncatedOutputHasItsTailAndAMarkerInTheAPI() throws {
        let agent = try startAgent()
        let client = agent.client
        // 5000 bytes under max_output 1000: the head 500, 4000 dropped, the
        // tail 500; the journal's chunks hold the first 1000.
        let text = (0..<5000).map { String(UnicodeScalar(UInt8(97 + $0 / 200 % 26))) }.joined()
        let made = try client.post("/v1/jobs", json: #"{"argv":["printf","%s","\#(text)"],"max_output":1000}"#).json
        let id = try XCTUnwrap(made["id"] as? String)
        let job = try waitForFinal(client, id)
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        XCTAssertEqual(result["stdout"] as? String, String(text.prefix(500)))
        XCTAssertEqual(result["stdout_dropped"] as? Int, 4000)
        XCTAssertEqual(result["stdout_tail"] as? String, String(text.suffix(500)))
        XCTAssertNil(result["stderr_tail"])
        XCTAssertEqual((job["spec"] as? [String: Any])?["max_output"] as? Int, 1000, "the spec, for a re-run")
        let output = try client.get("/v1/jobs/\(id)/output")
        XCTAssertEqual(output.text, String(text.prefix(1000)) + "\n… 3500 bytes of stdout dropped …\n" + String(text.suffix(500)))
        XCTAssertEqual(output.headers["x-corral-dropped-bytes"], "3500")
        XCTAssertEqual(try client.get("/v1/jobs/\(id)/output?stream=stderr").text, "")
        // The events' result carries the same fields.
        let events = try client.events("/v1/jobs/\(id)/events").text
        XCTAssertTrue(events.contains(#""stdout_tail":"\#(text.suffix(500))""#))

        // 1200 bytes under 1000: the kept tail overlaps the journaled
        // 1000, so /output is the whole output, with no marker.
        let overlap = String(text.prefix(1200))
        let second = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"argv":["printf","%s","\#(overlap)"],"max_output":1000}"#).json["id"] as? String)
        _ = try waitForFinal(client, second)
        let whole = try client.get("/v1/jobs/\(second)/output?download=1")
        XCTAssertEqual(whole.text, overlap)
        XCTAssertEqual(whole.headers["x-corral-dropped-bytes"], "0")
        XCTAssertEqual(whole.headers["content-type"], "application/octet-stream")
        XCTAssertEqual(whole.headers["content-disposition"], "attachment; filename=\"\(second)-combined.out\"")
    }

    /// A result is committed ahead of its last output chunks, so every read
    /// of a job that turns final while it reads must still see the whole
    /// kept output: the job, its `/output`, and a replayed submit. Readers
    /// poll while truncated jobs end (under load a GET once got the tail in
    /// place of the head, and no tail).
    func testReadsOfJobsEndingMeanwhileSeeTheirWholeOutput() throws {
        let agent = try startAgent(["--max-jobs", "8"])
        let port = agent.port
        let text = (0..<5000).map { String(UnicodeScalar(UInt8(97 + $0 / 200 % 26))) }.joined()
        let head = String(text.prefix(500)), tail = String(text.suffix(500))
        let expectedOutput = String(text.prefix(1000)) + "\n… 3500 bytes of stdout dropped …\n" + tail
        let clients = 6, perClient = 25
        let problems = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            let http = HTTPClient(port: port)
            for index in 0..<perClient {
                do {
                    let spec = #"{"argv":["printf","%s","\#(text)"],"max_output":1000}"#
                    let key = ["Idempotency-Key": "read-\(client)-\(index)"]
                    let id = try XCTUnwrap(try http.post("/v1/jobs", json: spec, headers: key).json["id"] as? String)
                    // Reads race the job's end: each one that finds it final checks all of it.
                    var finalReads = 0
                    for round in 0..<4000 where finalReads < 3 {
                        let reply: [String: Any]
                        switch round % 3 {
                        case 0: reply = try http.get("/v1/jobs/\(id)").json
                        case 1: reply = try http.post("/v1/jobs", json: spec, headers: key).json
                        default:
                            let output = try http.get("/v1/jobs/\(id)/output")
                            guard output.headers["x-corral-job-state"] == "exited" else { continue }
                            finalReads += 1
                            if output.text != expectedOutput { problems.withLock { $0.append("\(id) /output: \(output.text.prefix(40))…") } }
                            continue
                        }
                        guard reply["final"] as? Bool == true else { continue }
                        finalReads += 1
                        let result = reply["result"] as? [String: Any] ?? [:]
                        if result["stdout"] as? String != head || result["stdout_tail"] as? String != tail {
                            problems.withLock { $0.append("\(id) round \(round % 3): stdout \((result["stdout"] as? String ?? "nil").prefix(20))…, tail \((result["stdout_tail"] as? String ?? "nil").prefix(20))…") }
                        }
                    }
                    if finalReads < 3 { problems.withLock { $0.append("\(id) never read final") } }
                } catch {
                    problems.withLock { $0.append("\(error)") }
                }
            }
        }
        XCTAssertEqual(problems.withLock { $0 }, [])
    }

    /// Issue 15's scale check: 100,000 jobs in the journal. The page's
    /// list (a page, a filtered page, a search, a `since` window refresh)
    /// stays cheap. Generous bounds; the figures are printed.
    func testListStaysResponsiveWith100000JobsInTheJournal() throws {
        try prepareJournal()
        try fillJournal(jobs: 100_000)
        let agent = try startAgent(["--keep-jobs", "1000000", "--keep-for", "1000h"])
        let client = agent.client
        func timed(_ path: String, count expected: Int) throws -> Double {
            var best = Double.infinity
            for _ in 0..<3 {
                let start = ContinuousClock.now
                let answer = try client.get(path)
                let took = ContinuousClock.now - start
                let elapsed = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
                XCTAssertEqual(answer.status, 200, path)
                XCTAssertEqual((answer.json["jobs"] as? [Any])?.count, expected, path)
                best = min(best, elapsed)
            }
            return best
        }
        let figures: [(String, Double)] = [
            ("newest page (100)", try timed("/v1/jobs?limit=100", count: 100)),
            ("page deep down (after=j500)", try timed("/v1/jobs?limit=100&after=j500", count: 100)),
            ("failed filter (100 of 2,000)", try timed("/v1/jobs?limit=100&state=failed", count: 100)),
            ("search, one match (q=name-77777)", try timed("/v1/jobs?limit=100&q=name-77777", count: 1)),
            ("search, no match (full scan)", try timed("/v1/jobs?limit=100&q=nothing-matches", count: 0)),
            ("window refresh (since, 1000 rows)", try timed("/v1/jobs?limit=1000&since=j99002", count: 1000)),
        ]
        for (what, seconds) in figures {
            print("list with 100,001 jobs: \(what): \((seconds * 10_000).rounded() / 10) ms")
            XCTAssertLessThan(seconds, 5, "\(what) took \(seconds) s")
        }
    }
}
