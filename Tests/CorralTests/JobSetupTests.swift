import Foundation
import XCTest
@testable import Corral

/// Scenario 11: stdin, environment, working directory (and user) reach the job.
final class JobSetupTests: CorralTestCase {
    func testStdinBytesReachTheChild() async throws {
        var spec = JobSpec(.executable("cat"))
        spec.input = .text("line one\nline two")
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "line one\nline two")
    }

    func testLargeStdinThatTheJobIgnoresDoesNotBlock() async throws {
        var spec = JobSpec(.shell("echo ignoring input"))
        spec.input = .bytes([UInt8](repeating: 65, count: 4 << 20))
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "ignoring input\n")
    }

    func testDefaultStdinIsEmpty() async throws {
        let result = try await runner.run(JobSpec(.executable("wc", arguments: ["-c"])))
        XCTAssertEqual(result.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines), "0")
    }

    func testEnvironmentOverridesRemovalsAndJobID() async throws {
        var spec = JobSpec(.shell("echo \"$CORRAL_TEST_VALUE|${HOME-unset}|$CORRAL_JOB_ID\""))
        spec.environment = .inherit(updating: ["CORRAL_TEST_VALUE": "over ridden", "HOME": nil])
        let result = try await runner.run(spec)
        XCTAssertEqual(result.stdout.text, "over ridden|unset|\(result.id.rawValue)\n")
    }

    /// The inherited environment is this process's, entry for entry, with
    /// the job's own CORRAL_JOB_ID in place of one this process carries (a
    /// runner inside a Corral job), and empty values kept.
    func testInheritedEnvironmentIsThisProcesssWithTheJobsOwnID() async throws {
        setenv("CORRAL_JOB_ID", "outer-job", 1)
        setenv("CORRAL_TEST_EMPTY", "", 1)
        defer {
            unsetenv("CORRAL_JOB_ID")
            unsetenv("CORRAL_TEST_EMPTY")
        }
        var expected = thisProcessEnvironment()
        let result = try await runner.run(JobSpec(.executable("/usr/bin/env", arguments: ["-0"])))

        let entries = result.stdout.text.split(separator: "\0").map(String.init)
        var seen: [String: String] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            XCTAssertNil(seen[String(parts[0])], "\(parts[0]) twice")
            seen[String(parts[0])] = parts.count > 1 ? String(parts[1]) : nil
        }
        expected["CORRAL_JOB_ID"] = result.id.rawValue
        expected["CORRAL_JOB_IDS"] = "outer-job," + result.id.rawValue  // kept for the outer runner's sweep
        XCTAssertEqual(seen, expected)
        XCTAssertEqual(seen["CORRAL_TEST_EMPTY"], "")
    }

    /// Jobs share one copy of the environment while it stays the same; a
    /// change made between two submissions reaches the second job.
    func testEnvironmentChangesBetweenJobsAreSeen() async throws {
        let spec = JobSpec(.shell("echo ${CORRAL_TEST_CHANGING-unset}"))
        defer { unsetenv("CORRAL_TEST_CHANGING") }
        var seen: [String] = []
        for value in [nil, "one", "two", "six", nil] as [String?] {
            if let value { setenv("CORRAL_TEST_CHANGING", value, 1) } else { unsetenv("CORRAL_TEST_CHANGING") }
            seen.append(try await runner.run(spec).stdout.text)
        }
        XCTAssertEqual(seen, ["unset\n", "one\n", "two\n", "six\n", "unset\n"])
    }

    /// A program without a slash is looked up in the job's PATH, as changed.
    func testProgramIsLookedUpInTheJobsPath() async throws {
        let directory = scratch.appendingPathComponent("bin").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let program = try script("bin/corral-only-here", "echo found")
        XCTAssertTrue(program.hasPrefix(directory))
        var spec = JobSpec(.executable("corral-only-here"))
        spec.environment = .inherit(updating: ["PATH": directory])
        let found = try await runner.run(spec)
        XCTAssertEqual(found.outcome, .exited(0))
        XCTAssertEqual(found.stdout.text, "found\n")

        spec.environment = .inherit(updating: ["PATH": "/nonexistent"])
        let missing = try await runner.run(spec)
        guard case .failedToStart(let failure) = missing.outcome else {
            return XCTFail("\(missing.outcome)")
        }
        XCTAssertEqual(failure.stage, .lookup)
    }

    func testCustomEnvironmentHasOnlyWhatWasGiven() async throws {
        var spec = JobSpec(.executable("/usr/bin/env"))
        spec.environment = .custom(["ONLY": "this"])
        let result = try await runner.run(spec)
        let lines = Set(result.stdout.text.split(separator: "\n").map(String.init))
        XCTAssertEqual(lines, ["ONLY=this", "CORRAL_JOB_ID=\(result.id.rawValue)", "CORRAL_JOB_IDS=\(result.id.rawValue)"])
    }

    func testWorkingDirectoryIsApplied() async throws {
        var spec = JobSpec(.executable("/bin/pwd"))
        spec.workingDirectory = scratch.path
        let result = try await runner.run(spec)
        XCTAssertEqual(result.stdout.text, URL(fileURLWithPath: scratch.path).resolvingSymlinksInPath().path + "\n")
    }

    func testRunsAsAnotherUserWhenRoot() async throws {
        try XCTSkipUnless(getuid() == 0, "changing user needs root")
        var spec = JobSpec(.shell("id -u; id -g"))
        spec.user = .name("nobody")
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "65534\n65534\n")
    }

    /// The working directory is entered as the job's user, as `runuser`
    /// would: a directory that user cannot search, itself or on the way to
    /// it, fails the spawn at `chdir` instead of being entered as root.
    func testWorkingDirectoryIsEnteredAsTheJobsUser() async throws {
        try XCTSkipUnless(getuid() == 0, "changing user needs root")
        // Under /tmp, which anyone may search (the scratch directory's own
        // parents, under $TMPDIR, may not be).
        let base = URL(fileURLWithPath: "/tmp/corral-cwd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        chmod(base.path, 0o755)
        let closed = base.appendingPathComponent("closed")
        let inner = closed.appendingPathComponent("inner")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: true)
        try "secret\n".write(to: inner.appendingPathComponent("f"), atomically: true, encoding: .utf8)
        chmod(inner.path, 0o755)
        for (directory, mode) in [(closed, 0o700), (inner, 0o700)] {
            chmod(closed.path, directory == closed ? mode_t(mode) : 0o755)
            chmod(inner.path, directory == inner ? mode_t(mode) : 0o755)
            var spec = JobSpec(.executable("/bin/cat", arguments: ["f"]))
            spec.user = .name("nobody")
            spec.workingDirectory = inner.path
            let result = try await runner.run(spec)
            guard case .failedToStart(let failure) = result.outcome else {
                return XCTFail("\(directory.lastPathComponent) 0700: \(result.outcome) \(result.stdout.text)")
            }
            XCTAssertEqual(failure.stage, .chdir)
            XCTAssertEqual(failure.errno, EACCES)
            XCTAssertEqual(result.stdout.text, "")
        }
        // Open to the user: it runs there.
        chmod(closed.path, 0o755)
        chmod(inner.path, 0o755)
        var spec = JobSpec(.executable("/bin/cat", arguments: ["f"]))
        spec.user = .name("nobody")
        spec.workingDirectory = inner.path
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "secret\n")
    }

    func testChangingUserWithoutRootFailsClearly() async throws {
        try XCTSkipIf(getuid() == 0, "as root the change succeeds (see testRunsAsAnotherUserWhenRoot)")
        var spec = JobSpec(.executable("/bin/true"))
        spec.user = .id(12345)
        let result = try await runner.run(spec)
        guard case .failedToStart(let failure) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertEqual(failure.errno, EPERM)
        XCTAssertTrue(failure.message.contains("needs root"))
    }

    func testArgumentsAreNotExpanded() async throws {
        let result = try await runner.run(JobSpec(.executable("printf", arguments: ["%s|", "$HOME", "*", "a b"])))
        XCTAssertEqual(result.stdout.text, "$HOME|*|a b|")
    }
}

/// Regression: a finished stdin writer was closed a second time at delivery,
/// after libuv had freed its handle; the memory by then belonged to another
/// job's output pipe, which lost its output. Many concurrent jobs with stdin
/// make the reuse certain.
final class ConcurrentInputTests: CorralTestCase {
    func testConcurrentJobsWithStdinKeepEveryOutput() throws {
        let results = ResultBox()
        for index in 0..<200 {
            var spec = JobSpec(.executable("/bin/echo", arguments: ["job-\(index)"]))
            spec.input = .text("ignored input \(index)")
            spec.name = String(index)
            try runner.submit(spec, onCompletion: results.add)
        }
        let all = results.wait(for: 200)
        XCTAssertEqual(all.count, 200)
        for result in all {
            XCTAssertEqual(result.outcome, .exited(0), "\(result.name!): \(result.outcome)")
            XCTAssertEqual(result.stdout.text, "job-\(result.name!)\n")
            XCTAssertFalse(result.pipesForceClosed)
        }
    }
}

/// This process's environment now, read from `environ` (the first of
/// duplicate names wins, as in getenv).
private func thisProcessEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let line = String(cString: pointer)
        if let equals = line.firstIndex(of: "="), result[String(line[..<equals])] == nil {
            result[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        entry += 1
    }
    return result
}
