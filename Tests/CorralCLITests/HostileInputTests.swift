import Foundation
import XCTest
@testable import Corral

/// Values a hostile or careless user sends: each is refused at the edge
/// with a message naming the field or flag, nothing crashes, and a job
/// running beside them still ends by its deadline.
final class HostileInputTests: CLITestCase {
    /// Each line once crashed `corral batch` (SIGILL in an unchecked
    /// conversion) or was silently misread; field is what the error must name.
    static let hostileLines: [(line: String, field: String?)] = [
        (#"{"id": 1e19, "argv": ["true"]}"#, "id"),
        (#"{"id": 1.5, "argv": ["true"]}"#, "id"),
        (#"{"argv": ["true"], "signal": 1e19}"#, "signal"),
        (#"{"argv": ["true"], "signal": 1.5}"#, "signal"),
        (#"{"argv": ["true"], "signal": 9.9}"#, "signal"),
        (#"{"argv": ["true"], "signal": 0}"#, "signal"),
        (#"{"argv": ["true"], "signal": 65}"#, "signal"),
        (#"{"argv": ["true"], "max_output": 1e19}"#, "max_output"),
        (#"{"argv": ["true"], "max_output": -1}"#, "max_output"),
        (#"{"argv": ["true"], "max_output": "99999999999999999999"}"#, "max_output"),
        (#"{"argv": ["true"], "user": 1e10}"#, "user"),
        (#"{"argv": ["true"], "user": 4294967295}"#, "user"),
        (#"{"argv": ["true"], "user": -1}"#, "user"),
        (#"{"argv": ["true"], "user": "4294967295"}"#, "user"),
        (#"{"argv": ["true"], "group": 5e9}"#, "group"),
        (#"{"argv": ["true"], "group": 4294967295}"#, "group"),
        (#"{"argv": ["true"], "group": 0.5}"#, "group"),
        (#"{"argv": ["true"], "timeout": 1e30}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": 1e308}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "99999999999h"}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "3651d"}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "1h99999999999999h"}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": 0}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "0s"}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": -1}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "0x10"}"#, "timeout"),
        (#"{"argv": ["true"], "timeout": "inf"}"#, "timeout"),
        (#"{"argv": ["true"], "kill_after": 1e30}"#, "kill_after"),
        (#"{"argv": ["true"], "drain": "99999999999h"}"#, "drain"),
        (#"{"argv": ["true"], "argv": ["false"]}"#, nil),
        (#"{"argv": ["true", "a\u0000b"]}"#, "argv[1]"),
        (#"{"argv": ["true"], "cwd": ""}"#, "cwd"),
        (#"{"argv": ["true"], "env": {"A=B": "x"}}"#, "env"),
        (#"{"argv": ["true"], "user": ""}"#, "user"),
    ]

    func testEveryHostileLineIsRefusedNamingItsFieldAndTheVictimKeepsItsDeadline() async throws {
        var lines = [#"{"id": "victim", "argv": ["sleep", "30"], "timeout": "2s"}"#]
        lines += HostileInputTests.hostileLines.map(\.line)
        let input = try write("hostile.jsonl", lines.joined(separator: "\n"))
        let result = try await corral("batch", input, "--quiet")
        XCTAssertEqual(exitCode(result), 1, result.stderr.text)
        let results = try jsonLines(result.stdout)
        XCTAssertEqual(results.count, lines.count, "one result per line")
        let byLine = Dictionary(uniqueKeysWithValues: results.map { ($0["line"] as! Int, $0) })
        XCTAssertEqual(byLine[1]?["outcome"] as? String, "timed_out", "the victim ends by its deadline")
        XCTAssertEqual(byLine[1]?["id"] as? String, "victim")
        for (index, hostile) in HostileInputTests.hostileLines.enumerated() {
            let answer = try XCTUnwrap(byLine[index + 2], hostile.line)
            XCTAssertEqual(answer["outcome"] as? String, "invalid_spec", hostile.line)
            XCTAssertEqual(answer["field"] as? String, hostile.field, "\(hostile.line): \(answer)")
            let error = answer["error"] as? String ?? ""
            XCTAssertFalse(error.isEmpty, hostile.line)
            if let field = hostile.field {
                XCTAssertTrue(error.hasPrefix(field + ": "), "\(hostile.line): \(error)")
                XCTAssertFalse(error.hasPrefix("\(field): \(field):"), "one prefix: \(error)")
            }
        }
    }

    func testMalformedBytesAreRefusedNotRepaired() async throws {
        var input = Data()
        input.append(Data(#"{"id": "utf8", "argv": ["echo", ""#.utf8) + Data([0xFF, 0xFE]) + Data(#""]}"#.utf8) + Data("\n".utf8))
        input.append(Data(#"{"id": "nul", "argv": ["echo", "a"#.utf8) + Data([0x00]) + Data(#"b"]}"#.utf8) + Data("\n".utf8))
        input.append(Data(#"{"id": "dup", "argv": ["true"], "timeout": "1s", "timeout": "1h"}"#.utf8) + Data("\n".utf8))
        input.append(Data(#"{"id": "deep", "argv": "#.utf8) + Data(String(repeating: "[", count: 10_000).utf8) + Data("\n".utf8))
        input.append(Data(#"{"id": "ok", "argv": ["echo", "caf\u00e9"]}"#.utf8) + Data("\n".utf8))
        let path = scratch.appendingPathComponent("bytes.jsonl").path
        try input.write(to: URL(fileURLWithPath: path))
        let result = try await corral("batch", path, "--quiet")
        XCTAssertEqual(exitCode(result), 1, result.stderr.text)
        let results = try jsonLines(result.stdout)
        XCTAssertEqual(results.count, 5)
        let byLine = Dictionary(uniqueKeysWithValues: results.map { ($0["line"] as! Int, $0) })
        for line in 1...4 {
            XCTAssertEqual(byLine[line]?["outcome"] as? String, "invalid_spec", "line \(line): \(byLine[line] ?? [:])")
        }
        XCTAssertTrue((byLine[1]?["error"] as? String ?? "").contains("invalid UTF-8"), "\(byLine[1] ?? [:])")
        XCTAssertTrue((byLine[2]?["error"] as? String ?? "").contains("control character"), "\(byLine[2] ?? [:])")
        XCTAssertTrue((byLine[3]?["error"] as? String ?? "").contains(#"duplicate key "timeout""#), "\(byLine[3] ?? [:])")
        XCTAssertTrue((byLine[4]?["error"] as? String ?? "").contains("nested deeper"), "\(byLine[4] ?? [:])")
        XCTAssertEqual(byLine[5]?["outcome"] as? String, "exited")
        XCTAssertEqual(byLine[5]?["stdout"] as? String, "café\n", "escapes decode exactly")
    }

    func testHostileFlagsOfRunAreRefusedNamingTheFlag() async throws {
        let cases: [(arguments: [String], flag: String)] = [
            (["run", "--timeout", "99999999999h", "--", "sleep", "300"], "--timeout"),
            (["run", "--timeout", "1e30", "--", "sleep", "300"], "--timeout"),
            (["run", "--timeout", "-1s", "--", "sleep", "300"], "--timeout"),
            (["run", "--timeout", "0", "--", "sleep", "300"], "--timeout"),
            (["run", "--kill-after", "99999999999h", "--", "true"], "--kill-after"),
            (["run", "--drain", "-5s", "--", "true"], "--drain"),
            (["run", "--signal", "99", "--", "true"], "--signal"),
            (["run", "--signal", "-1", "--", "true"], "--signal"),
            (["run", "--user", "4294967295", "--group", "0", "--", "id"], "--user"),
            (["run", "--user", "-1", "--", "id"], "--user"),
            (["run", "--group", "4294967295", "--", "id"], "--group"),
            (["run", "--group", "99999999999", "--", "id"], "--group"),
            (["run", "--max-output", "99999999999999999999", "--json", "--", "true"], "--max-output"),
            (["batch", "-j", "4611686018427387904", "/dev/null"], "--jobs"),
            (["batch", "-j", "0", "/dev/null"], "--jobs"),
            (["batch", "--timeout", "-1s", "/dev/null"], "--timeout"),
            (["batch", "--timeout", "0", "/dev/null"], "--timeout"),
            (["batch", "--max-output", "1e30", "/dev/null"], "--max-output"),
            (["run", "--unset-env", "", "--", "true"], "--unset-env"),
            (["run", "--unset-env", "A=B", "--", "true"], "--unset-env"),
            // Two spellings of é are one String key: they would set one
            // variable, named as the first and valued as the last.
            (["run", "--env", "\u{E9}=1", "--env", "e\u{301}=2", "--", "true"], "--env"),
            (["run", "--env", "\u{E9}=1", "--unset-env", "e\u{301}", "--", "true"], "--unset-env"),
        ]
        for (arguments, flag) in cases {
            let result = try await runner.run(spec(arguments))
            XCTAssertEqual(exitCode(result), 125, "\(arguments): \(result.stderr.text)")
            XCTAssertTrue(result.stderr.text.contains(flag), "\(arguments) names \(flag): \(result.stderr.text)")
            XCTAssertFalse(result.stderr.text.contains("Missing value"), "\(arguments): \(result.stderr.text)")
        }
        XCTAssertTrue(markedProcesses().isEmpty, "nothing was started: \(markedProcesses())")
    }

    func testUnreadableInputsAreErrorsNotEmptyBatches() async throws {
        let directory = try await corral("batch", scratch.path)
        XCTAssertEqual(exitCode(directory), 125)
        XCTAssertTrue(directory.stderr.text.contains("is a directory"), directory.stderr.text)

        // Standard input closed: a message, not a crash.
        let result = try await runner.run(shell(#"exec "$0" batch - <&-"#))
        XCTAssertEqual(exitCode(result), 125, result.stderr.text)
        XCTAssertTrue(result.stderr.text.contains("standard input"), result.stderr.text)
    }

    /// Where corral's own answers would go nowhere (standard output closed),
    /// it says so and runs nothing, instead of writing to /dev/null and
    /// exiting 0. A job's own output (`corral run` without --json) does go
    /// to /dev/null there, as the job would have nothing to write to.
    func testClosedStandardOutputIsRefusedWhereCorralWritesResults() async throws {
        let ran = scratch.appendingPathComponent("ran").path
        let input = try write("jobs.jsonl", #"{"shell": "touch \#(ran)"}"#)
        for (script, what) in [(#"exec "$0" run --json -- touch "$1" >&-"#, "run --json"),
                               (#"exec "$0" batch "$2" >&-"#, "batch")] {
            let result = try await runner.run(shell(script, ran, input))
            XCTAssertEqual(exitCode(result), 125, "\(what): \(result.stderr.text)")
            XCTAssertTrue(result.stderr.text.contains("standard output is closed"), "\(what): \(result.stderr.text)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: ran), "\(what): the job ran")
        }
        let passed = try await runner.run(shell(#"exec "$0" run -- echo hi >&-"#))
        XCTAssertEqual(exitCode(passed), 0, passed.stderr.text)
    }

    /// A flag that is refused leaves the files named by the others as they
    /// were: nothing is opened for writing, let alone emptied, until every
    /// value is good and every file can be opened.
    func testRefusedFlagsLeaveExistingOutputFilesAlone() async throws {
        let input = try write("jobs.jsonl", #"{"argv": ["true"]}"#)
        let kept = try write("kept.txt", "precious\n")
        let cases: [[String]] = [
            ["batch", input, "--output", kept, "--containment", "bogus"],
            ["batch", input, "--output", kept, "--joblog", "/nonexistent/directory/log"],
            ["batch", input, "--output", kept, "--format", "bogus"],
            ["batch", input, "--joblog", kept, "--output", "/nonexistent/directory/results"],
            ["batch", input, "--output", kept, "--joblog", "/dev/full"],
        ]
        for arguments in cases {
            let result = try await runner.run(spec(arguments))
            XCTAssertEqual(exitCode(result), 125, "\(arguments): \(result.stderr.text)")
            XCTAssertEqual(try String(contentsOfFile: kept, encoding: .utf8), "precious\n", "\(arguments)")
        }
    }

    /// An argument that is not UTF-8 is refused, not repaired: each bad byte
    /// would have become U+FFFD, and the job would have acted on another
    /// file than the one named.
    func testArgumentsThatAreNotUTF8AreRefused() async throws {
        let ran = scratch.appendingPathComponent("ran").path
        for script in [#"exec "$0" run -- touch "$1" "$(printf 'a\377b')""#,
                       #"exec "$0" run --cwd "$(printf '/tmp/\377')" -- touch "$1""#,
                       #"exec "$0" batch "$(printf 'in\377.jsonl')""#] {
            let result = try await runner.run(shell(script, ran))
            XCTAssertEqual(exitCode(result), 125, "\(script): \(result.stderr.text)")
            XCTAssertTrue(result.stderr.text.contains("is not valid UTF-8"), "\(script): \(result.stderr.text)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: ran), "\(script): the job ran")
        }
    }

    /// A shell script with corral's path as $0 (and `arguments` as $1…),
    /// for what only a shell sets up: a closed descriptor, odd bytes.
    private func shell(_ script: String, _ arguments: String...) -> JobSpec {
        var spec = JobSpec(.executable("/bin/sh", arguments: ["-c", script, CLITestCase.binary] + arguments))
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        spec.timeout = .seconds(60)
        spec.outputLimit = .unlimited
        return spec
    }
}
