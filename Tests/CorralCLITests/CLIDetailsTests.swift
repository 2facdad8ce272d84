import Foundation
import XCTest
@testable import Corral

/// The command line's smaller promises: a progress line with real counts
/// from the start, agreeing with the summary; each default said once in
/// `--help`; days as durations; `batch --format text`.
final class CLIDetailsTests: CLITestCase {
    func testProgressShowsRunningAndQueuedJobsBeforeAnyEndsAndAgreesWithTheSummary() async throws {
        let lines = [
            #"{"argv": ["sleep", "2"]}"#, #"{"argv": ["sleep", "2"]}"#, #"{"argv": ["sleep", "2"]}"#,
            #"{"shell": "exit 3"}"#, #"{"argv": ["sleep", "30"], "timeout": "100ms"}"#,
        ]
        let input = try write("jobs.jsonl", lines.joined(separator: "\n"))
        let result = try await corral("batch", input, "-j", "2", "--progress")
        XCTAssertEqual(exitCode(result), 1, result.stderr.text)
        let stderr = result.stderr.text
        // Before the first job ended: two running (-j 2), two more read and queued
        // (corral reads at most 2 × -j lines ahead).
        XCTAssertTrue(stderr.contains("0/5 done (0 ok, 0 failed, 0 timed out), 2 running, 2 queued"), stderr)
        XCTAssertTrue(stderr.contains("5/5 done (3 ok, 1 failed, 1 timed out), 0 running, 0 queued"), stderr)
        XCTAssertTrue(stderr.contains("corral batch: 5 jobs in "), stderr)
        XCTAssertTrue(stderr.contains(": 3 ok, 1 failed, 1 timed out (outcomes: exited 4, timed_out 1)"), stderr)
    }

    func testHelpSaysEachDefaultOnce() async throws {
        for command in ["run", "batch", "agent"] {
            let result = try await corral(command, "--help")
            XCTAssertEqual(exitCode(result), 0)
            for line in result.stdout.text.split(separator: "\n") {
                let defaults = line.components(separatedBy: "(default").count - 1
                XCTAssertLessThanOrEqual(defaults, 1, "\(command): \(line)")
            }
            let text = result.stdout.text.replacingOccurrences(of: "\n", with: " ")
            if command == "run" {
                XCTAssertTrue(text.contains("(default: TERM)"), text)
                XCTAssertTrue(text.contains("(default: 2s)"), text)
            }
            if command == "agent" { XCTAssertTrue(text.contains("(default 64)"), text) }
        }
    }

    func testDurationsInDays() async throws {
        let data = scratch.appendingPathComponent("data").path
        let result = try await corral("agent", "--keep-for", "7d", "--drain-timeout", "1d12h", "--data-dir", data, "--print-config")
        XCTAssertEqual(exitCode(result), 0, result.stderr.text)
        XCTAssertTrue(result.stdout.text.contains("keep-for = \"7d\"  # from --keep-for"), result.stdout.text)
        let run = try await corral("run", "--timeout", "1d", "--", "true")
        XCTAssertEqual(exitCode(run), 0, run.stderr.text)
    }

    func testBatchTextFormat() async throws {
        let input = [
            #"{"id": "fine", "argv": ["true"]}"#,
            #"{"id": "broken", "shell": "echo first problem >&2; echo second >&2; exit 3"}"#,
            #"{"id": "missing", "argv": ["/nonexistent/tool"]}"#,
            #"{"id": "typo", "argv": ["true"], "timout": "1s"}"#,
            #"{"id": "slow", "argv": ["sleep", "30"], "timeout": "100ms"}"#,
            // A terminal escape in an id and in stderr reaches no terminal raw.
            #"{"id": "esc\u001b[2Jape", "shell": "printf '\\033]0;pwned\\007 red\\n' >&2; exit 1"}"#,
        ].joined(separator: "\n")
        let result = try await corral("batch", "-", "-j", "1", "--format", "text", "--quiet", stdin: input)
        XCTAssertEqual(exitCode(result), 1, result.stderr.text)
        let lines = result.stdout.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 6, result.stdout.text)
        func line(_ id: String) -> String { lines.first { $0.hasPrefix(id + "  ") } ?? "" }
        XCTAssertTrue(line("fine").hasPrefix("fine  exited  exit 0  "), line("fine"))
        XCTAssertTrue(line("fine").hasSuffix("s"), line("fine"))
        XCTAssertTrue(line("broken").hasPrefix("broken  exited  exit 3  "), line("broken"))
        XCTAssertTrue(line("broken").hasSuffix("  stderr: first problem"), line("broken"))
        XCTAssertTrue(line("missing").hasPrefix("missing  failed_to_start  -  "), line("missing"))
        XCTAssertTrue(line("typo").hasPrefix("typo  invalid_spec  -  -  "), line("typo"))
        XCTAssertTrue(line("typo").contains("timout"), line("typo"))
        XCTAssertTrue(line("slow").hasPrefix("slow  timed_out  signal TERM  "), line("slow"))
        XCTAssertFalse(result.stdout.text.contains("{"), result.stdout.text)
        XCTAssertFalse(result.stdout.text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, result.stdout.text)
        XCTAssertTrue(line("esc\\x1b[2Jape").hasSuffix("stderr: \\x1b]0;pwned\\x07 red"), result.stdout.text)

        let bad = try await corral("batch", "-", "--format", "yaml", stdin: "")
        XCTAssertEqual(exitCode(bad), 125)
        XCTAssertTrue(bad.stderr.text.contains("--format: expected json or text"), bad.stderr.text)
    }
}
