import CorralTestSupport
import Corral
import Foundation
import XCTest

/// The page's promises, each shown in real headless Chromium over the
/// DevTools protocol (`Browser/page_scenarios.py`), with a screenshot in
/// `.build/test-artifacts/agent-page-<scenario>.png`: truncation is marked
/// and the tail shown, the note says why a job ended and what was stopped,
/// filters and paging are exact, ANSI colours are colours, a download is
/// the exact bytes, the layout fits 1024 px and the table works from the
/// keyboard, a token-protected page asks for the token, and a shutting-down
/// or vanished agent is announced.
final class AgentPageScenarioTests: AgentTestCase {
    func testTruncatedOutputShowsTheMarkerAndTheTail() async throws {
        // 3,000,000 bytes of numbered lines; the last line is END-OF-OUTPUT.
        let (agent, client, id) = try agentRunning(#"""
            {"argv":["python3","-c","import sys\nw=sys.stdout.write\nw('START\\n')\nw(''.join('line %07d\\n' % n for n in range(1, 240000))[:3000000-20])\nw('\\nEND-OF-OUTPUT\\n')"]}
            """#)
        let job = try waitForFinal(client, id)
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        let limit = 1 << 20, total = 3_000_000 - 20 + 6 + 15
        XCTAssertEqual(result["stdout_dropped"] as? Int, total - limit)
        XCTAssertEqual((result["stdout"] as? String)?.utf8.count, limit / 2, "the head alone")
        XCTAssertTrue((result["stdout_tail"] as? String ?? "").hasSuffix("END-OF-OUTPUT\n"), "the tail is its own field")
        // /output: the first --max-output bytes (journaled), the marker, the tail.
        let output = try client.get("/v1/jobs/\(id)/output")
        let gap = total - limit - limit / 2
        XCTAssertEqual(output.headers["x-corral-dropped-bytes"], "\(gap)")
        XCTAssertTrue(output.text.contains("\n… \(gap) bytes of stdout dropped …\n"), String(output.text.prefix(200)))
        XCTAssertTrue(output.text.hasPrefix("START\nline 0000001\n"))
        XCTAssertTrue(output.text.hasSuffix("END-OF-OUTPUT\n"))

        let shown = try await scenario(agent, "truncation", [id])
        XCTAssertEqual(shown["gaps"] as? [String], ["… \(gap) bytes of stdout dropped (over max_output) … the tail follows"], "\(shown)")
        XCTAssertEqual(shown["length"] as? Int, limit + limit / 2 + (shown["gaps"] as? [String] ?? []).joined().count, "\(shown)")
        XCTAssertTrue((shown["start"] as? String ?? "").hasPrefix("START\nline 0000001"), "\(shown)")
        XCTAssertTrue((shown["end"] as? String ?? "").hasSuffix("END-OF-OUTPUT\n"), "the tail is shown: \(shown)")
        XCTAssertTrue((shown["note"] as? [String] ?? []).contains { $0.contains("\(total - limit) bytes over max_output were dropped") }, "\(shown)")
    }

    func testTimedOutJobsNoteNamesTheTimeoutAndWhatWasStopped() async throws {
        // A process that leaves the job's group (setsid), and one that stays.
        let (agent, client, id) = try agentRunning(#"""
            {"shell":"setsid sleep 3001 & sleep 3002 & echo up; wait","timeout":"1s","id":"slow-one"}
            """#)
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "timed_out")
        XCTAssertEqual(job["timeout_s"] as? Double, 1)

        let shown = try await scenario(agent, "note", [id], name: "note-timed-out")
        let note = shown["note"] as? [String] ?? []
        XCTAssertTrue(note.first?.hasPrefix("Timed out: the 1s timeout passed, and the stop sequence ran") == true, "\(shown)")
        let killed = try XCTUnwrap(note.first { $0.hasPrefix("Killed: ") }, "the processes stopped by name: \(shown)")
        XCTAssertTrue(killed.contains("sleep"), killed)
        XCTAssertTrue(note.contains { $0.hasPrefix("Stopped: the job's ") && $0.contains("leader pid") }, "\(shown)")
        XCTAssertTrue(note.contains { $0.hasPrefix("Containment: ") }, "\(shown)")
        XCTAssertEqual(shown["timeout"] as? String, "1s")
        XCTAssertFalse((shown["exit"] as? String ?? "").isEmpty)
    }

    func testCancelledJobsNoteSaysWhoCancelled() async throws {
        try requireChromium()
        let agent = try startAgent()
        let client = agent.client
        let id = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"argv":["sleep","3003"]}"#).json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))
        XCTAssertEqual(try client.delete("/v1/jobs/\(id)").status, 202)
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["message"] as? String, "cancelled by a client (DELETE /v1/jobs/\(id))")
        let shown = try await scenario(agent, "note", [id], name: "note-cancelled")
        XCTAssertTrue((shown["note"] as? [String] ?? []).first?.hasPrefix("Cancelled by a client (DELETE /v1/jobs/\(id)); SIGTERM ended the leader") == true,
                      "\(shown)")
    }

    func testFailedFilterShowsExactlyTheFailedJobsAndSearchFindsNames() async throws {
        try requireChromium()
        let agent = try startAgent()
        let client = agent.client
        let specs = [
            (#"{"argv":["true"],"id":"fine"}"#, false),
            (#"{"shell":"exit 3","id":"exit-three"}"#, true),
            (#"{"shell":"kill -9 $$","id":"self-killed"}"#, true),
            (#"{"argv":["/nonexistent/corral-test-binary"],"id":"cannot-start"}"#, true),
            (#"{"argv":["sleep","30"],"timeout":"300ms","id":"too-slow"}"#, false),
            (#"{"shell":"echo needle-in-command","id":"plain"}"#, false),
            (#"{"argv":["true"],"id":"Needle-Name"}"#, false),
        ]
        var failed: [String] = [], all: [String] = []
        for (spec, fails) in specs {
            let id = try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String, spec)
            all.append(id)
            if fails { failed.append(id) }
        }
        for id in all { _ = try waitForFinal(client, id) }
        // The API agrees with itself first.
        let listed = try client.get("/v1/jobs?state=failed").json["jobs"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.compactMap { $0["id"] as? String }, failed.reversed())

        let shown = try await scenario(agent, "filter", ["failed"])
        XCTAssertEqual(shown["ids"] as? [String], failed.reversed(), "\(shown)")
        let options = shown["options"] as? [String] ?? []
        for state in ["", "queued", "running", "final", "failed", "exited", "signaled", "timed_out", "cancelled", "failed_to_start", "lost"] {
            XCTAssertTrue(options.contains(state), "no filter for \(state): \(options)")
        }
        XCTAssertEqual((shown["headers"] as? [String])?.prefix(3).map { $0 }, ["Job", "Name", "Command"])
        XCTAssertEqual(shown["names"] as? [String], ["cannot-start", "self-killed", "exit-three"])
        let widths = try XCTUnwrap(shown["widths"] as? [String: Int], "\(shown)")
        XCTAssertLessThanOrEqual(widths["page_scroll"] ?? .max, widths["page_client"] ?? 0, "sideways scroll at 1400 px: \(widths)")
        XCTAssertLessThanOrEqual(widths["table_scroll"] ?? .max, widths["table_client"] ?? 0, "the table scrolls sideways at 1400 px: \(widths)")

        let searched = try await scenario(agent, "filter", ["", "needle"], name: "search")
        XCTAssertEqual(searched["ids"] as? [String], [all[6], all[5]], "command and name, without case: \(searched)")
        let none = try await scenario(agent, "filter", ["cancelled"], name: "cancelled")
        XCTAssertEqual(none["ids"] as? [String], [])
        XCTAssertEqual(none["empty"] as? String, "No jobs match.")
    }

    func testPagingThroughJobsWhileNewOnesArriveShowsEachOnce() async throws {
        try requireChromium()
        let agent = try startAgent(["--max-jobs", "16"])
        let client = agent.client
        for index in 1...300 {
            XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"],"id":"old-\#(index)"}"#).status, 201)
        }
        let shown = try await scenario(agent, "paging", ["10"])
        let final = shown["final"] as? [String] ?? []
        XCTAssertEqual(final, (1...310).reversed().map { "j\($0)" }, "every job once, newest first")
        XCTAssertEqual((shown["submitted"] as? [String])?.count, 10)
        for step in shown["steps"] as? [[String: Any]] ?? [] {
            XCTAssertEqual(step["duplicates"] as? Int, 0, "\(step)")
            XCTAssertEqual(step["gaps"] as? Int, 0, "\(step)")
        }
        XCTAssertEqual(shown["more_hidden"] as? Bool, true)
        print("paging steps: \(shown["steps"] ?? [])")
    }

    func testANSIColoursRenderAsColours() async throws {
        let (agent, client, id) = try agentRunning(#"""
            {"shell":"printf '\\033]0;title\\007\\033[31mRED\\033[0m plain \\033[1;32mGREEN\\033[0m \\033[38;5;208mORANGE\\033[0m \\033[38;2;10;20;30mDARK\\033[0m \\033[4;44mUNDER\\033[0m \\033[2Kdone\\n'; printf '\\033[33mWARN\\033[0m\\n' >&2; printf '\\033[3'; sleep 0.4; printf '5mSPLIT\\033[0m \\342\\202'; sleep 0.4; printf '\\254uro\\n'"}
            """#)
        _ = try waitForFinal(client, id)
        let shown = try await scenario(agent, "ansi", [id])
        let spans = try XCTUnwrap(shown["spans"] as? [String: [String: Any]], "\(shown)")
        XCTAssertEqual(spans["RED"]?["color"] as? String, "rgb(255, 95, 86)", "\(spans)")
        XCTAssertEqual(spans["GREEN"]?["color"] as? String, "rgb(95, 208, 104)", "\(spans)")
        XCTAssertEqual(spans["GREEN"]?["weight"] as? String, "700", "\(spans)")
        XCTAssertEqual(spans["ORANGE"]?["color"] as? String, "rgb(255, 135, 0)", "\(spans)")
        XCTAssertEqual(spans["DARK"]?["color"] as? String, "rgb(10, 20, 30)", "\(spans)")
        XCTAssertEqual(spans["UNDER"]?["background"] as? String, "rgb(31, 79, 168)", "\(spans)")
        XCTAssertEqual(spans["UNDER"]?["decoration"] as? String, "underline", "\(spans)")
        XCTAssertEqual(spans["WARN"]?["color"] as? String, "rgb(244, 211, 94)", "stderr takes colours too: \(spans)")
        XCTAssertNotEqual(spans["plain"]?["color"] as? String, spans["RED"]?["color"] as? String, "the reset resets")
        XCTAssertEqual(shown["raw_escape"] as? Bool, false, "no escape sequence shown raw: \(shown["text"] ?? "")")
        XCTAssertTrue((shown["text"] as? String ?? "").contains("RED plain GREEN ORANGE DARK UNDER done"), "\(shown)")
        // An escape sequence and a character each split across output chunks.
        XCTAssertEqual(spans["SPLIT"]?["color"] as? String, "rgb(212, 126, 232)", "\(spans)")
        XCTAssertTrue((shown["text"] as? String ?? "").contains("SPLIT €uro"), "\(shown)")
    }

    func testBinaryOutputIsNoticedAndItsDownloadIsTheExactBytes() async throws {
        let (agent, client, id) = try agentRunning(#"""
            {"argv":["python3","-c","import sys; sys.stdout.buffer.write(bytes(range(256)) * 64 + b'\\xff\\xfe')"]}
            """#)
        _ = try waitForFinal(client, id)
        let shown = try await scenario(agent, "download", [id])
        let expected = [UInt8]((0..<64).flatMap { _ in (0...255).map { UInt8($0) } } + [0xFF, 0xFE])
        let downloaded = try XCTUnwrap(Data(base64Encoded: shown["base64"] as? String ?? ""), "\(shown)")
        XCTAssertEqual(downloaded.count, expected.count)
        XCTAssertTrue([UInt8](downloaded) == expected, "the download is the exact bytes")
        XCTAssertEqual(shown["type"] as? String, "application/octet-stream")
        XCTAssertEqual(shown["disposition"] as? String, "attachment; filename=\"\(id)-stdout.out\"")
        XCTAssertEqual(shown["download_attribute"] as? Bool, true)
        XCTAssertTrue((shown["notice"] as? String ?? "").hasPrefix("stdout is not UTF-8 text"), "\(shown)")
        XCTAssertEqual(shown["shown"] as? Int, 0, "no tofu: binary bytes are not rendered as text")
    }

    func testLayoutAt1024AndKeyboardNavigation() async throws {
        try requireChromium()
        let agent = try startAgent()
        let client = agent.client
        let long = String(repeating: "a-very-long-argument-", count: 30)
        for spec in [#"{"argv":["echo","\#(long)"],"id":"\#(long)"}"#, #"{"shell":"exit 2"}"#, #"{"argv":["true"]}"#] {
            let id = try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String)
            _ = try waitForFinal(client, id)
        }
        let shown = try await scenario(agent, "layout", [])
        for key in ["widths", "widths_after"] {
            let widths = try XCTUnwrap(shown[key] as? [String: Int], "\(shown)")
            XCTAssertLessThanOrEqual(widths["page_scroll"] ?? .max, widths["page_client"] ?? 0, "sideways scroll at 1024 px: \(widths)")
            if let table = widths["table_scroll"] {
                XCTAssertLessThanOrEqual(table, widths["table_client"] ?? 0, "the table scrolls sideways: \(widths)")
            }
        }
        XCTAssertEqual(shown["first_focused"] as? String, "j3")
        XCTAssertEqual(shown["after_arrows"] as? String, "j1")
        XCTAssertEqual(shown["hash"] as? String, "#j1")
        XCTAssertEqual(shown["tabbable_rows"] as? Int, 1, "one row in the tab order")
        // State is said in words and a symbol, not in colour alone.
        XCTAssertEqual(shown["badges"] as? [String], ["✓ exited ok", "✗ exited (failed)", "✓ exited ok"])
        let header = shown["header"] as? String ?? ""
        XCTAssertTrue(header.contains("corral ") && header.contains("containment: "), header)
    }

    func testArgvModeSplitsLikeAShellAndReRunSubmitsTheSameSpec() async throws {
        try requireChromium()
        let agent = try startAgent()
        let line = #"printf '[%s]' 'a b' "c\"d \$x" e\ f '' "#
        let shown = try await scenario(agent, "argv", [line])
        XCTAssertTrue((shown["unclosed"] as? String ?? "").contains("quote is not closed"), "\(shown)")
        let expected = ["printf", "[%s]", "a b", #"c"d $x"#, "e f", ""]
        for id in ["j1", "j2"] {
            let job = try agent.client.get("/v1/jobs/\(id)").json
            XCTAssertEqual((job["spec"] as? [String: Any])?["argv"] as? [String], expected, "\(id): \(job)")
        }
        XCTAssertEqual(shown["output"] as? String, #"[a b][c"d $x][e f][]"#)
        XCTAssertEqual(shown["rerun_output"] as? String, shown["output"] as? String)
        XCTAssertEqual((try agent.client.get("/v1/jobs").json["jobs"] as? [Any])?.count, 2, "no job for the refused line")
    }

    func testRunningJobsDurationTicksAndItsCutLiveOutputIsSaid() async throws {
        try requireChromium()
        let agent = try startAgent()
        let id = try XCTUnwrap(try agent.client.post("/v1/jobs", json: #"""
            {"shell":"head -c 3000 /dev/zero | tr '\\0' x; exec sleep 3005","max_output":1000}
            """#).json["id"] as? String)
        XCTAssertTrue(waitForState(agent.client, id, "running"))
        XCTAssertEqual(try agent.client.get("/v1/jobs/\(id)").json["live_output_limit"] as? Int, 1000)
        let shown = try await scenario(agent, "live", [id])
        XCTAssertNotEqual(shown["first"] as? String, shown["later"] as? String, "\(shown)")
        XCTAssertTrue((shown["later"] as? String ?? "").hasSuffix("s…"), "\(shown)")
        XCTAssertEqual(shown["row"] as? String, "▶ running")
        XCTAssertEqual(shown["cut"] as? String,
                       "Live output stops at the first 1000 bytes of stdout (max_output); the job goes on, and the kept tail is shown when it ends.")
        XCTAssertEqual(try agent.client.delete("/v1/jobs/\(id)").status, 202)
        _ = try waitForFinal(agent.client, id)
    }

    /// Issue 15's scale check in the browser: 100,000 jobs in the journal.
    /// Generous bounds; the figures are printed.
    func testPageStaysResponsiveWith100000JobsInTheJournal() async throws {
        try requireChromium()
        try prepareJournal()
        try fillJournal(jobs: 100_000)
        let agent = try startAgent(["--keep-jobs", "1000000", "--keep-for", "1000h"])
        let shown = try await scenario(agent, "scale", [])
        print("page with 100,001 jobs: \(shown.filter { $0.key != "csp_violations" })")
        XCTAssertEqual(shown["window_rows"] as? Int, 400)
        XCTAssertLessThan(shown["first_table_ms"] as? Double ?? .infinity, 20_000)
        for key in ["refresh_ms", "window_refresh_ms", "failed_refresh_ms"] {
            let median = (shown[key] as? [Double] ?? [])[safe: 2] ?? .infinity
            XCTAssertLessThan(median, 2_000, "\(key): \(shown[key] ?? "")")
        }
    }

    func testTokenPromptInsteadOfRawJSON() async throws {
        try requireChromium()
        let token = "page-token-\(UUID().uuidString)"
        let file = scratch.appendingPathComponent("token").path
        try token.write(toFile: file, atomically: true, encoding: .utf8)
        let agent = try startAgent(["--token-file", file])
        XCTAssertEqual(try agent.client.post("/v1/jobs", json: #"{"argv":["true"]}"#,
                                             headers: ["Authorization": "Bearer \(token)"]).status, 201)
        // A browser gets the page (which asks for the token); no job data without it.
        let page = try agent.client.get("/", headers: ["Accept": "text/html"])
        XCTAssertEqual(page.status, 401)
        XCTAssertTrue(page.text.contains("Token required"))
        XCTAssertEqual(try agent.client.get("/v1/jobs", headers: ["Accept": "text/html"]).status, 401)

        let shown = try await scenario(agent, "token", [token])
        XCTAssertEqual(shown["raw_json_shown"] as? Bool, false, "\(shown)")
        XCTAssertTrue((shown["prompt"] as? String ?? "").contains("requires a token"), "\(shown)")
        XCTAssertEqual(shown["rows"] as? [String], ["j1"], "\(shown)")
        XCTAssertEqual(shown["location"] as? String, "http://127.0.0.1:\(agent.port)/", "the token leaves the address bar")
    }

    func testBannerWhenTheAgentShutsDownAndIsGone() async throws {
        try requireChromium()
        let agent = try startAgent(["--shutdown-grace", "4s"])
        let id = try XCTUnwrap(try agent.client.post("/v1/jobs", json: #"{"argv":["sleep","3004"]}"#).json["id"] as? String)
        XCTAssertTrue(waitForState(agent.client, id, "running"))
        let shown = try await scenario(agent, "banner", ["\(agent.pid)"])
        XCTAssertEqual(shown["before"] as? Bool, true, "no banner while all is well")
        XCTAssertTrue((shown["shutting_down"] as? String ?? "").hasPrefix("The agent is shutting down"), "\(shown)")
        XCTAssertTrue((shown["unreachable"] as? String ?? "").hasPrefix("The agent is unreachable since"), "\(shown)")
        XCTAssertNotNil(agent.waitForExit())
    }

    /// Runs one scenario of `page_scenarios.py` against the agent; returns
    /// its report, after checking the page kept to its CSP.
    private func scenario(_ agent: AgentProcess, _ name: String, _ arguments: [String], name shot: String? = nil,
                          file: StaticString = #filePath, line: UInt = #line) async throws -> [String: Any] {
        let screenshot = try EndToEnd.artifacts(in: AgentTestCase.repositoryRoot).appendingPathComponent("agent-page-\(shot ?? name).png").path
        try? FileManager.default.removeItem(atPath: screenshot)
        let driver = AgentTestCase.repositoryRoot.appendingPathComponent("Tests/CorralAgentTests/Browser/page_scenarios.py").path
        let result = try await EndToEnd.runDriver(driver, ["http://127.0.0.1:\(agent.port)/", screenshot, name] + arguments,
                                                  runner: runner, marker: marker, timeout: .seconds(240))
        let (report, problems) = EndToEnd.pageReport(result, "page scenario \(name)")
        for problem in problems { XCTFail(problem, file: file, line: line) }
        guard let report else { throw HTTPClient.Failure(description: "scenario \(name) failed") }
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot))?[.size] as? Int ?? 0
        XCTAssertGreaterThan(size, 10_000, "screenshot at \(screenshot)", file: file, line: line)
        print("agent page \(name) screenshot: \(screenshot)")
        return report
    }
}

private extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

extension AgentPageScenarioTests {
    /// Chromium is required; an agent is started and given one job: the
    /// agent, its client and the job's id.
    func agentRunning(_ spec: String, file: StaticString = #filePath, line: UInt = #line)
        throws -> (AgentProcess, HTTPClient, String) {
        try requireChromium()
        let agent = try startAgent()
        let client = agent.client
        let made = try client.post("/v1/jobs", json: spec).json
        return (agent, client, try XCTUnwrap(made["id"] as? String, file: file, line: line))
    }
}
