import Foundation
import XCTest
@testable import Corral

final class RunCommandTests: CLITestCase {
    func testExitCodesFollowTimeout1() async throws {
        let notExecutable = try write("plain.txt", "not a program")
        let cases: [([String], Int32)] = [
            (["run", "--", "true"], 0),
            (["run", "--", "sh", "-c", "exit 7"], 7),
            (["run", "--timeout", "300ms", "--", "sleep", "1000"], 124),
            (["run", "--", notExecutable], 126),
            (["run", "--", "corral-no-such-command"], 127),
            (["run", "--", "/nonexistent/program"], 127),
            (["run", "--timeout", "soon", "--", "true"], 125),
            (["run", "--bogus", "--", "true"], 125),
            (["run", "--cwd", "/nonexistent", "--", "true"], 125),
            (["run"], 125),
            (["run", "--", "sh", "-c", "kill -USR1 $$"], 128 + SIGUSR1),
        ]
        for (arguments, expected) in cases {
            let result = try await runner.run(spec(arguments))
            XCTAssertEqual(exitCode(result), expected, "\(arguments): \(result.stderr.text)")
        }
    }

    func testUsageErrorsNameTheFlagAndTheAcceptedForms() async throws {
        let result = try await corral("run", "--kill-after", "2 parsecs", "--", "true")
        XCTAssertEqual(exitCode(result), 125)
        XCTAssertTrue(result.stderr.text.contains("--kill-after"), result.stderr.text)
        XCTAssertTrue(result.stderr.text.contains("500ms"), result.stderr.text)
        let signal = try await corral("run", "--signal", "BOGUS", "--", "true")
        XCTAssertEqual(exitCode(signal), 125)
        XCTAssertTrue(signal.stderr.text.contains("--signal"), signal.stderr.text)
    }

    func testTheSeedHangEndsOnTimeWithItsOutput() async throws {
        let inner = try write("inner.sh", "#!/bin/sh\nsleep 1000\n")
        let outer = try write("sleep.sh", "#!/bin/sh\necho 'in sleep'\n\(inner)\n")
        chmod(inner, 0o755)
        chmod(outer, 0o755)
        let result = try await corral("run", "--timeout", "1s", "--", outer)
        XCTAssertEqual(exitCode(result), 124)
        XCTAssertEqual(result.stdout.text, "in sleep\n")
        XCTAssertLessThan(result.timing.duration, .seconds(5))
    }

    func testStreamingIsBinarySafeOnBothStreams() async throws {
        let bytes = try write("bytes.bin", "")
        try Data((0...255).map { UInt8($0) }).write(to: URL(fileURLWithPath: bytes))
        let result = try await corral("run", "--shell", "cat '\(bytes)'; cat '\(bytes)' >&2; exit 3")
        XCTAssertEqual(exitCode(result), 3)
        XCTAssertEqual(result.stdout.bytes, (0...255).map { UInt8($0) })
        XCTAssertEqual(result.stderr.bytes, (0...255).map { UInt8($0) })
    }

    func testStdinPassesThrough() async throws {
        let result = try await corral("run", "--", "tr", "a-z", "A-Z", stdin: "quiet words")
        XCTAssertEqual(result.stdout.text, "QUIET WORDS")
    }

    func testJSONResultSchema() async throws {
        let result = try await corral("run", "--json", "--timeout", "5s", "--env", "GREETING=hi there",
                                      "--shell", "echo \"$GREETING\"; printf '\\377' >&2; exit 4")
        XCTAssertEqual(exitCode(result), 4)
        let object = try XCTUnwrap(jsonLines(result.stdout).first)
        XCTAssertEqual(object["outcome"] as? String, "exited")
        XCTAssertEqual(object["exit_code"] as? Int, 4)
        XCTAssertTrue(object["signal"] is NSNull)
        XCTAssertEqual(object["stdout"] as? String, "hi there\n")
        XCTAssertNil(object["stderr"], "invalid UTF-8 is given as base64")
        XCTAssertEqual(object["stderr_base64"] as? String, "/w==")
        XCTAssertEqual(object["stdout_dropped"] as? Int, 0)
        XCTAssertEqual(object["pipes_force_closed"] as? Bool, false)
        XCTAssertNotNil(object["pid"] as? Int)
        let started = try XCTUnwrap(object["started_at"] as? String)
        XCTAssertNotNil(started.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), started)
        XCTAssertNotNil(object["duration_s"] as? Double)
    }

    func testJSONTimeoutAndKeptOutput() async throws {
        let result = try await corral("run", "--json", "--timeout", "300ms", "--max-output", "10",
                                      "--shell", "printf 'abcdefghijklmnopqrstuvwxyz'; sleep 1000")
        XCTAssertEqual(exitCode(result), 124)
        let object = try XCTUnwrap(jsonLines(result.stdout).first)
        XCTAssertEqual(object["outcome"] as? String, "timed_out")
        XCTAssertEqual(object["signal"] as? String, "TERM")
        XCTAssertEqual(object["stdout"] as? String, "abcde", "the head, before the dropped bytes")
        XCTAssertEqual(object["stdout_dropped"] as? Int, 16)
        XCTAssertEqual(object["stdout_tail"] as? String, "vwxyz", "the tail, after them")
        XCTAssertNil(object["stderr_tail"], "nothing of stderr was dropped")
    }

    func testInterruptStopsTheJobReportsAndExits130() async throws {
        let collected = Collected()
        let handle = try runner.submit(spec(["run", "--json", "--", "sh", "-c", "echo up; exec sleep 1000"]),
                                       onCompletion: collected.add)
        _ = handle
        XCTAssertNotNil(waitForMarked("sleep"), "the job started")
        let corralPID = try XCTUnwrap(waitForMarked("corral"))
        kill(corralPID, SIGINT)
        XCTAssertTrue(waitUntil { collected.first != nil })
        let result = try XCTUnwrap(collected.first)
        XCTAssertEqual(exitCode(result), 130)
        let object = try XCTUnwrap(jsonLines(result.stdout).first)
        XCTAssertEqual(object["outcome"] as? String, "cancelled", "the result is still reported")
        XCTAssertEqual(object["stdout"] as? String, "up\n")
    }

    /// QUIT too (Ctrl-\\): left to Swift's backtracer it printed a crash
    /// report and corral ran on.
    func testTermHangupAndQuitExitWithTheirOwnCodes() async throws {
        for (signal, code) in [(SIGTERM, Int32(143)), (SIGHUP, Int32(129)), (SIGQUIT, Int32(131))] {
            let collected = Collected()
            try runner.submit(spec(["run", "--", "sleep", "1000"]), onCompletion: collected.add)
            XCTAssertNotNil(waitForMarked("sleep"))
            kill(try XCTUnwrap(waitForMarked("corral")), signal)
            XCTAssertTrue(waitUntil { collected.first != nil })
            XCTAssertEqual(collected.first.flatMap(exitCode), code)
            XCTAssertFalse(collected.first?.stderr.text.contains("crashed") ?? true, "\(signal): \(collected.first?.stderr.text ?? "")")
            XCTAssertTrue(waitUntil { self.markedProcesses().isEmpty })
        }
    }

    func testHelpShowsExamplesAndVersion() async throws {
        let help = try await corral("run", "--help")
        XCTAssertEqual(exitCode(help), 0)
        XCTAssertTrue(help.stdout.text.contains("corral run --timeout 2s"), help.stdout.text)
        let version = try await corral("--version")
        XCTAssertEqual(version.stdout.text.trimmingCharacters(in: .newlines), "corral 0.1.0")
    }
}
