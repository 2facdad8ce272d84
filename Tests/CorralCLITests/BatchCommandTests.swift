import Foundation
import XCTest
@testable import Corral

final class BatchCommandTests: CLITestCase {
    func testValidInvalidAndTimedOutLinesEachGetOneResult() async throws {
        let input = try write("jobs.jsonl", """
            {"id": "ok", "argv": ["echo", "fine"]}
            this is not json
            {"id": "typo", "argv": ["true"], "timout": "1s"}

            {"id": "slow", "shell": "sleep 1000", "timeout": "300ms"}
            {"argv": ["sh", "-c", "exit 2"]}
            {"id": "bad-duration", "argv": ["true"], "timeout": "forever"}
            """)
        let result = try await corral("batch", input, "--quiet")
        XCTAssertEqual(exitCode(result), 1, "a job failed")
        let lines = try jsonLines(result.stdout)
        XCTAssertEqual(lines.count, 6, "one result per non-blank line")
        let byID = Dictionary(uniqueKeysWithValues: lines.map { ($0["id"] as! String, $0) })
        XCTAssertEqual(byID["ok"]?["outcome"] as? String, "exited")
        XCTAssertEqual(byID["ok"]?["stdout"] as? String, "fine\n")
        XCTAssertEqual(byID["2"]?["outcome"] as? String, "invalid_spec")
        XCTAssertEqual(byID["2"]?["line"] as? Int, 2)
        XCTAssertTrue((byID["2"]?["error"] as? String)?.contains("not valid JSON") ?? false)
        XCTAssertEqual(byID["typo"]?["outcome"] as? String, "invalid_spec")
        XCTAssertEqual(byID["typo"]?["field"] as? String, "timout")
        XCTAssertEqual(byID["slow"]?["outcome"] as? String, "timed_out")
        XCTAssertEqual(byID["6"]?["exit_code"] as? Int, 2, "the id defaults to the line number")
        XCTAssertEqual(byID["bad-duration"]?["field"] as? String, "timeout")
        XCTAssertTrue((byID["bad-duration"]?["error"] as? String)?.contains("30s") ?? false)
    }

    func testAllSuccessfulOutputFileJoblogAndSummary() async throws {
        let input = try write("jobs.jsonl", (1...5).map { #"{"id": "j\#($0)", "argv": ["echo", "\#($0)"], "stdin": "abc"}"# }.joined(separator: "\n"))
        let output = scratch.appendingPathComponent("results.jsonl").path
        let joblog = scratch.appendingPathComponent("joblog.tsv").path
        let result = try await corral("batch", input, "-j", "2", "--output", output, "--joblog", joblog)
        XCTAssertEqual(exitCode(result), 0)
        XCTAssertEqual(result.stdout.text, "", "results went to the file")
        XCTAssertTrue(result.stderr.text.contains("corral batch: 5 jobs"), result.stderr.text)
        XCTAssertTrue(result.stderr.text.contains("p95"), result.stderr.text)
        let written = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(written.count, 5)
        let log = try String(contentsOfFile: joblog, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        XCTAssertEqual(log.first?.map(String.init), ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"])
        XCTAssertEqual(log.count, 6)
        for row in log.dropFirst() {
            XCTAssertEqual(row.count, 9)
            XCTAssertNotNil(Double(row[2]))
            XCTAssertEqual(row[4], "3", "stdin bytes sent")
            XCTAssertEqual(row[5], "2", "bytes received")
            XCTAssertEqual(row[6], "0")
            XCTAssertTrue(row[8].hasPrefix("echo "))
        }
        XCTAssertEqual(Set(log.dropFirst().map { String($0[0]) }), ["1", "2", "3", "4", "5"])
    }

    func testInterruptAnswersEveryLineAndLeavesNothing() async throws {
        let input = try write("jobs.jsonl", (1...10).map { #"{"id": "s\#($0)", "argv": ["sleep", "1000"]}"# }.joined(separator: "\n"))
        let collected = Collected()
        try runner.submit(spec(["batch", input, "-j", "2", "--quiet"]), onCompletion: collected.add)
        XCTAssertTrue(waitUntil { self.markedProcesses().filter { $0.hasSuffix(" sleep") }.count == 2 }, "two running")
        kill(try XCTUnwrap(waitForMarked("corral")), SIGINT)
        XCTAssertTrue(waitUntil { collected.first != nil })
        let result = try XCTUnwrap(collected.first)
        XCTAssertEqual(exitCode(result), 130)
        let lines = try jsonLines(result.stdout)
        XCTAssertEqual(Set(lines.compactMap { $0["id"] as? String }), Set((1...10).map { "s\($0)" }))
        XCTAssertEqual(lines.count, 10)
        XCTAssertTrue(lines.allSatisfy { $0["outcome"] as? String == "cancelled" })
        XCTAssertEqual(lines.filter { $0["pid"] is Int }.count, 2, "the two running ones were stopped")
    }

    /// No job starts once a failure is known: the rest are answered "not
    /// started" and none of them ran (each would have left a file). With
    /// -j 2 the job running beside the failure is stopped, not one more.
    func testFailFastStartsNothingAfterTheFailure() async throws {
        // A line refused as invalid fails at once, before the window is full.
        let invalid = try write("invalid.jsonl", ([#"{"argv": "not an array"}"#]
            + (1...6).map { #"{"shell": "touch \#(scratch.path)/invalid-\#($0)"}"# }).joined(separator: "\n"))
        let refused = try await corral("batch", invalid, "-j", "4", "--fail-fast", "--quiet")
        XCTAssertEqual(exitCode(refused), 1)
        XCTAssertEqual(try jsonLines(refused.stdout).filter { $0["outcome"] as? String == "cancelled" }.count, 6)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: scratch.path).contains { $0.hasPrefix("invalid-") })
        for jobs in ["1", "2"] {
            let ran = scratch.appendingPathComponent("ran-\(jobs)")
            try FileManager.default.createDirectory(at: ran, withIntermediateDirectories: true)
            var lines = [#"{"id": "fails", "shell": "sleep 0.3; exit 3"}"#]
            if jobs == "2" { lines.append(#"{"id": "beside", "shell": "sleep 1000"}"#) }
            lines += (1...6).map { #"{"id": "later\#($0)", "shell": "touch \#(ran.path)/\#($0); sleep 1000"}"# }
            let input = try write("jobs-\(jobs).jsonl", lines.joined(separator: "\n"))
            let result = try await corral("batch", input, "-j", jobs, "--fail-fast", "--quiet")
            XCTAssertEqual(exitCode(result), 1)
            let answered = try jsonLines(result.stdout)
            XCTAssertEqual(answered.count, lines.count)
            XCTAssertEqual(answered.first { $0["id"] as? String == "fails" }?["exit_code"] as? Int, 3)
            let later = answered.filter { ($0["id"] as? String)?.hasPrefix("later") ?? false }
            XCTAssertEqual(later.count, 6)
            for line in later {
                XCTAssertEqual(line["outcome"] as? String, "cancelled", "-j \(jobs): \(line)")
                XCTAssertEqual(line["error"] as? String, "not started: the batch was stopped", "-j \(jobs): \(line)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: ran.path), [], "-j \(jobs): started after the failure")
            if jobs == "2" {
                XCTAssertEqual(answered.first { $0["id"] as? String == "beside" }?["outcome"] as? String, "cancelled")
            }
        }
    }

    func testUnreadableInputIsCorralsOwnError() async throws {
        let result = try await corral("batch", "/nonexistent/jobs.jsonl")
        XCTAssertEqual(exitCode(result), 125)
        XCTAssertTrue(result.stderr.text.contains("/nonexistent/jobs.jsonl"))
        let badJobs = try await corral("batch", "-j", "0")
        XCTAssertEqual(exitCode(badJobs), 125)
    }

    func testStandardInputAndProgressLine() async throws {
        let result = try await corral("batch", "-", "--progress", stdin: #"{"argv": ["true"]}"# + "\n" + #"{"argv": ["false"]}"#)
        XCTAssertEqual(exitCode(result), 1)
        XCTAssertEqual(try jsonLines(result.stdout).count, 2)
        XCTAssertTrue(result.stderr.text.contains("2 done"), result.stderr.text)
    }

    /// Ten thousand jobs stream through: results are written as they finish,
    /// so corral's memory does not grow with the number of jobs.
    func testTenThousandJobsWithBoundedMemory() async throws {
        let line = #"{"shell": "printf '%02000d' 0"}"#  // 2 kB of output each: 20 MB if results were held
        let input = try write("many.jsonl", Array(repeating: line, count: 10_000).joined(separator: "\n"))
        let output = scratch.appendingPathComponent("results.jsonl").path
        let collected = Collected()
        try runner.submit(spec(["batch", input, "-j", "64", "--output", output, "--quiet"]), onCompletion: collected.add)
        let pid = try XCTUnwrap(waitForMarked("corral"))
        var peakKiB = 0
        _ = waitUntil(upTo: .seconds(600)) {
            if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) {
                peakKiB = max(peakKiB, kib)
            }
            return collected.first != nil
        }
        let result = try XCTUnwrap(collected.first)
        XCTAssertEqual(exitCode(result), 0, result.stderr.text)
        let results = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(results.count, 10_000)
        XCTAssertTrue(results.allSatisfy { $0.contains(#""outcome":"exited""#) })
        XCTAssertGreaterThan(peakKiB, 0)
        XCTAssertLessThan(peakKiB, 64 * 1024, "peak RSS \(peakKiB) KiB: results are not held")
        print("corral batch: 10,000 jobs, peak RSS \(peakKiB) KiB, \(result.timing.duration)")
    }
}
