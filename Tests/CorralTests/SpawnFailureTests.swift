import Foundation
import XCTest
@testable import Corral

/// Scenario 5: jobs that cannot start are results, with errno and stage;
/// the runner carries on.
final class SpawnFailureTests: CorralTestCase {
    private func failure(_ spec: JobSpec, file: StaticString = #filePath, line: UInt = #line) async throws -> SpawnFailure? {
        let result = try await runner.run(spec)
        guard case .failedToStart(let failure) = result.outcome else {
            XCTFail("expected failedToStart, got \(result.outcome)", file: file, line: line)
            return nil
        }
        XCTAssertNil(result.pid, file: file, line: line)
        return failure
    }

    func testMissingExecutablePath() async throws {
        let failure = try await failure(JobSpec(.executable("/nonexistent/corral-missing")))
        XCTAssertEqual(failure?.errno, ENOENT)
        XCTAssertEqual(failure?.stage, .exec)
        XCTAssertTrue(failure?.message.contains("/nonexistent/corral-missing") ?? false)
    }

    func testMissingCommandInPath() async throws {
        let failure = try await failure(JobSpec(.executable("corral-no-such-command")))
        XCTAssertEqual(failure?.errno, ENOENT)
        XCTAssertEqual(failure?.stage, .lookup)
    }

    func testFileWithoutExecuteBit() async throws {
        let path = try script("not-executable.sh", "echo never", mode: 0o644)
        let failure = try await failure(JobSpec(.executable(path)))
        XCTAssertEqual(failure?.errno, EACCES)
        XCTAssertEqual(failure?.stage, .exec)
    }

    func testMissingWorkingDirectory() async throws {
        var spec = JobSpec(.executable("/bin/pwd"))
        spec.workingDirectory = scratch.appendingPathComponent("missing").path
        let failure = try await failure(spec)
        XCTAssertEqual(failure?.errno, ENOENT)
        XCTAssertEqual(failure?.stage, .chdir)
        XCTAssertTrue(failure?.message.contains("missing") ?? false)
    }

    func testUnknownUser() async throws {
        var spec = JobSpec(.executable("/bin/true"))
        spec.user = .name("corral-no-such-user")
        let failure = try await failure(spec)
        XCTAssertEqual(failure?.errno, ENOENT)
        XCTAssertEqual(failure?.stage, .user)
        XCTAssertTrue(failure?.message.contains("corral-no-such-user") ?? false)
    }

    func testRunnerKeepsRunningAfterFailures() async throws {
        _ = try await failure(JobSpec(.executable("/nonexistent")))
        _ = try await failure(JobSpec(.executable("corral-no-such-command")))
        let result = try await runner.run(.shell("echo still-here"))
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "still-here\n")
    }

    func testInvalidSpecsThrowNamingTheField() async throws {
        let cases: [(JobSpec, String)] = [
            (JobSpec(.executable("")), "command"),
            (JobSpec(.shell("   ")), "command"),
            (JobSpec(.executable("/bin/echo", arguments: ["ok", "bad\0arg"])), "arguments[1]"),
            ({ var s = JobSpec(.executable("/bin/true")); s.timeout = .seconds(-1); return s }(), "timeout"),
            ({ var s = JobSpec(.executable("/bin/true")); s.killGrace = .seconds(-1); return s }(), "killGrace"),
            ({ var s = JobSpec(.executable("/bin/true")); s.environment = .inherit(updating: ["A=B": "x"]); return s }(), "environment"),
            ({ var s = JobSpec(.executable("/bin/true")); s.outputLimit = .bytes(-1); return s }(), "outputLimit"),
        ]
        for (spec, field) in cases {
            do {
                _ = try await runner.run(spec)
                XCTFail("\(field): accepted")
            } catch let error as CorralError {
                XCTAssertEqual(error.code, .invalidSpec)
                XCTAssertTrue(error.message.hasPrefix(field), "\(error.message) should name \(field)")
            }
        }
    }
}
