import CorralTestSupport
import Foundation
import XCTest

/// The fleet page of `corral server` in real headless Chromium, over real
/// agents: a run made through the form, every host's state and output
/// arriving live, a host cancelled, the failed filter, re-run; the token
/// prompt; and the run view of 1,000 hosts, measured.
final class FleetPageTests: FleetTestCase {
    func testFormRunsAScriptOnThreeAgentsAndTheRunViewFollowsEveryHostLive() async throws {
        try requireChromium()
        for name in ["a1", "a2", "a3"] { try startAgent(name, labels: ["role=web"]) }
        try startAgent("d1", labels: ["role=db"])
        let report = try await pageScenario("run", ["role=web", "a1", "a2", "a3"])

        // The target's host count, shown before the run is made.
        XCTAssertTrue((report["resolved_all"] as? String ?? "").hasPrefix("Resolves to 4 hosts"), "\(report)")
        XCTAssertTrue((report["resolved_picked"] as? String ?? "").hasPrefix("Resolves to 2 hosts"), "\(report)")
        XCTAssertEqual(report["resolved_count"] as? Int, 3, "\(report)")
        XCTAssertTrue((report["resolved_labels"] as? String ?? "").contains("a1, a2, a3"), "\(report)")

        // Live: the long host was seen running, with its output, before it was cancelled.
        let seen = report["states_seen"] as? [String: [String]] ?? [:]
        XCTAssertTrue(seen["a3"]?.contains("▶ running") == true, "\(seen)")
        let merged = report["merged"] as? String ?? ""
        for line in ["[a1] start a1", "[a2] start a2", "[a3] start a3", "[a2] failing on a2", "[a3] waiting a3", "[a1] green a1"] {
            XCTAssertTrue(merged.contains(line), "merged view lacks \(line): \(merged)")
        }
        XCTAssertEqual(report["host_output_grew"] as? Bool, true, "the host's pane tails its output")
        let green = report["green"] as? [String: Any] ?? [:]
        XCTAssertEqual(green["color"] as? String, "rgb(95, 208, 104)", "ANSI green is a colour: \(green)")
        XCTAssertEqual(report["raw_escape"] as? Bool, false)

        // Final: each host with its state and note; the counters add up.
        let states = report["final_states"] as? [String: String] ?? [:]
        XCTAssertEqual(states, ["a1": "✓ exited ok", "a2": "✗ exited 3", "a3": "⊘ cancelled"], "\(report)")
        let notes = report["notes"] as? [String: String] ?? [:]
        XCTAssertTrue(notes["a2"]?.contains("3") == true, "\(notes)")
        XCTAssertTrue(notes["a3"]?.contains("cancelled through the fleet server") == true, "\(notes)")
        XCTAssertEqual(report["counter_sum"] as? [String], ["3", "3"], "\(report)")
        XCTAssertEqual((report["default_order"] as? [String])?.first, "a2", "failed first")
        XCTAssertEqual(report["failed_rows"] as? [String], ["a2"], "\(report)")
        XCTAssertEqual(report["host_order"] as? [String], ["a1", "a2", "a3"])

        // Re-run failed: a new run on a2, or the server's own message while
        // the server has no such endpoint.
        let rerunError = report["rerun_error"] as? String ?? ""
        if rerunError.isEmpty {
            XCTAssertEqual(report["rerun_hosts"] as? [String], ["a2"], "\(report)")
        } else {
            XCTAssertTrue(rerunError.contains("/rerun"), "the server's message is shown: \(rerunError)")
        }

        // The second run from the form: a 3 s deadline times the last host out.
        XCTAssertEqual(report["deadline_states"] as? [String: String], ["a1": "✓ exited ok", "a2": "✗ exited 3", "a3": "◷ timed out"],
                       "\(report)")
        XCTAssertFalse((report["deadline_notes"] as? [String: String])?["a3"]?.isEmpty ?? true, "\(report)")

        // The page's run is the API's run.
        let run = try XCTUnwrap(report["run"] as? Int)
        let view = try runView(run)
        XCTAssertEqual(view["name"] as? String, "from the page")
        XCTAssertEqual(view["target"] as? [String: [String: String]], ["labels": ["role": "web"]])
        let tasks = tasks(view)
        XCTAssertEqual(tasks["a1"]?["exit_code"] as? Int, 0)
        XCTAssertEqual(tasks["a2"]?["exit_code"] as? Int, 3)
        XCTAssertEqual(tasks["a3"]?["state"] as? String, "cancelled")
        let runsRows = report["runs_rows"] as? [[String]] ?? []
        XCTAssertTrue(runsRows.contains { $0[0] == "\(run)" && $0[1].hasPrefix("from the page") && $0[2] == "h=$(basename \"$PWD\")"
                                          && $0[3] == "labels role=web" && $0[5].contains("3/3 finished") }, "\(runsRows)")
        XCTAssertTrue(runsRows.contains { $0[1].hasPrefix("with a deadline") && $0[5] == "3/3 finished · 1 failed · 1 timed out" },
                      "\(runsRows)")
        let bar = report["bar_parts"] as? [[String]] ?? []
        XCTAssertEqual(Set(bar.map { $0[0] }), ["s-ok", "s-fail", "s-cancelled"], "\(bar)")
        let hosts = report["hosts_rows"] as? [[String]] ?? []
        XCTAssertEqual(hosts.map { $0[0] }, ["a1", "a2", "a3", "d1"])
        XCTAssertTrue(hosts.allSatisfy { $0[1] == "● up" && !$0[3].isEmpty }, "\(hosts)")
        XCTAssertEqual(hosts.first?[2], "role=web")
        let widths = report["widths_1024"] as? [String: Int] ?? [:]
        XCTAssertEqual(widths["page_scroll"], widths["page_client"], "nothing scrolls sideways at 1024 px: \(widths)")
        let keyboard = report["keyboard"] as? [String] ?? []
        XCTAssertEqual(keyboard.count, 3)
        XCTAssertNotEqual(keyboard.first, keyboard[safe: 1], "ArrowDown moves to the next host: \(keyboard)")
        XCTAssertEqual(keyboard.last, "Output of \(keyboard[safe: 1] ?? "")", "Enter opens its output")
    }

    func testBinaryAndCappedOutputAreAnnouncedNotShownRaw() async throws {
        try requireChromium()
        try startAgent("b1", extra: ["--fleet-output-cap", "64KiB"])
        let binary = try createRun(#"{"target":{"all":true},"job":{"shell":"printf 'text first\\n'; printf '\\377\\376\\000\\001binary'"}}"#)
        let capped = try createRun(#"{"target":{"all":true},"job":{"shell":"seq 1 40000"}}"#)
        for run in [binary, capped] { _ = try waitForRun(run) }
        let report = try await pageScenario("output", ["\(binary)/b1", "\(capped)/b1"])
        let panes = report["panes"] as? [[String: Any]] ?? []
        XCTAssertEqual(panes.count, 2, "\(report)")
        let first = panes.first ?? [:], second = panes.last ?? [:]
        XCTAssertTrue((first["notice"] as? String ?? "").hasPrefix("b1: the output is not UTF-8 text"), "\(first)")
        XCTAssertEqual(first["length"] as? Int, 0, "nothing of it is shown as text: \(first)")
        let total = (1...40000).map { "\($0)\n" }.joined().utf8.count
        let shown = second["length"] as? Int ?? 0
        XCTAssertTrue((second["notice"] as? String ?? "").contains("\(total - shown) bytes over the agent's output cap were not shipped"),
                      "\(second), \(total) bytes written")
        XCTAssertTrue((second["start"] as? String ?? "").hasPrefix("1\n2\n3\n"), "\(second)")
        XCTAssertTrue(shown > 0 && shown <= 64 << 10, "the head, up to the cap: \(shown)")
    }

    func testFormBuildsPythonAndArgvJobsWithShellLikeQuoting() async throws {
        try requireChromium()
        try startAgent("q1")
        let argv = #"printf '%s|' "a b" 'c"d' e\'f "x\"y""#
        let python = "import sys\nprint('py', sys.version_info[0])"
        let report = try await pageScenario("submit", ["argv", "printf 'unclosed", "argv", argv, "python", python])
        let runs = report["runs"] as? [[String: Any]] ?? []
        XCTAssertEqual(runs.count, 3, "\(report)")
        XCTAssertEqual(runs.first?["error"] as? String, "argv: a ' quote is not closed", "\(report)")
        let argvRun = try XCTUnwrap(runs[safe: 1]?["run"] as? Int, "\(report)")
        let pythonRun = try XCTUnwrap(runs[safe: 2]?["run"] as? Int, "\(report)")
        XCTAssertEqual((try runView(argvRun)["job"] as? [String: Any])?["argv"] as? [String], ["printf", "%s|", "a b", "c\"d", "e'f", "x\"y"])
        XCTAssertEqual(runs[safe: 1]?["output"] as? String, "[q1] a b|c\"d|e'f|x\"y|\n", "\(report)")
        XCTAssertEqual((try runView(pythonRun)["job"] as? [String: Any])?["argv"] as? [String], ["python3", "-c", "import sys\nprint('py', sys.version_info[0])"])
        XCTAssertEqual(runs[safe: 2]?["output"] as? String, "[q1] py 3\n", "\(report)")
    }

    func testTokenProtectedPageAsksForTheTokenInsteadOfShowingRawJSON() async throws {
        try requireChromium()
        let tokenFile = scratch.appendingPathComponent("token").path
        try "page-s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let guarded = try launch(["server", "--db", databaseURL, "--listen", "127.0.0.1:0", "--token-file", tokenFile],
                                 directory: scratch.path)
        XCTAssertTrue(guarded.waitUntilListening(), guarded.output)
        let report = try await pageScenario("token", ["page-s3cret"], port: guarded.port)
        XCTAssertTrue((report["prompt"] as? String ?? "").contains("Token required"), "\(report)")
        XCTAssertEqual(report["raw_json_shown"] as? Bool, false)
        XCTAssertEqual(report["main_hidden"] as? Bool, true)
        XCTAssertEqual(report["rows"] as? Int, 0)
        XCTAssertFalse((report["location"] as? String ?? "").contains("s3cret"), "the token leaves the address bar")
        XCTAssertEqual(try request("GET", "/v1/runs/1/tasks", port: guarded.port).status, 401, "the page's data needs the token")
    }

    /// A run of 1,000 hosts (written with SQL, results of 4 KB each): the
    /// view reads a page of 200 rows without results, whatever the run's
    /// size. Generous bounds; the figures are printed for docs/fleet.md.
    func testRunViewOfAThousandHostsStaysResponsive() async throws {
        try requireChromium()
        let run = try insertFakeRun(hosts: 1000, prefix: "host", name: "thousand", resultBytes: 4000)
        let report = try await pageScenario("scale", ["\(run)"])
        XCTAssertEqual(report["counter_sum"] as? [String], ["1000", "1000"], "\(report)")
        XCTAssertEqual(report["shown"] as? String, "200 of 1000 shown")
        XCTAssertEqual(report["failed_shown"] as? String, "200 of 200 shown", "errors: exit 1, timed out, lost")
        XCTAssertEqual(report["page2_shown"] as? String, "page 2: 200 of 1000 shown")
        XCTAssertEqual(report["dom_rows"] as? Int, 200)
        let first = number(report["first_view_ms"]) ?? .infinity
        let refresh = (report["refresh_ms"] as? [Any] ?? []).compactMap(number)
        XCTAssertLessThan(first, 30_000, "\(report)")
        XCTAssertLessThan(refresh[safe: refresh.count / 2] ?? .infinity, 5_000, "median refresh: \(refresh)")
        let sizes = (report["sizes"] as? [String: Any] ?? [:]).compactMapValues(number)
        XCTAssertLessThan(sizes["tasks_page_bytes"] ?? .infinity, (sizes["full_view_bytes"] ?? 0) / 5, "\(sizes)")
        print("fleet page, 1,000 hosts: first view \(Int(first)) ms; refresh ms \(refresh.map { Int($0) }); "
              + "failed filter refresh ms \((report["failed_refresh_ms"] as? [Any] ?? []).compactMap(number).map { Int($0) }); "
              + "sorted by duration refresh ms \((report["sorted_refresh_ms"] as? [Any] ?? []).compactMap(number).map { Int($0) }); sizes \(sizes)")
    }
}

private extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
