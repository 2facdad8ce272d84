import Foundation
import XCTest
@testable import Corral

/// What a job inherits: nothing of the runner but what it asked for.
final class ChildStateTests: CorralTestCase {
    /// The job's view of its descriptors: the numbers in /proc/self/fd that
    /// still exist after the listing (the glob's own is gone by then).
    static let listDescriptors = JobSpec(.shell(#"for f in /proc/self/fd/*; do if [ -e "$f" ]; then echo "${f##*/}"; fi; done"#))

    /// A runner made while this process's soft open-files limit is 1024:
    /// it raises its own to the hard limit and gives its jobs 1024 back.
    private func withLoweredLimitRunner(_ body: (Runner) async throws -> Void) async throws {
        var saved = rlimit()
        getrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &saved)
        try XCTSkipIf(saved.rlim_max <= 2048, "needs a hard open-files limit above 2048")
        var lowered = saved
        lowered.rlim_cur = 1024
        XCTAssertEqual(setrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &lowered), 0)
        defer { setrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &saved) }
        let runner = try Runner(configuration: configuration)
        XCTAssertEqual(runner.limits.openFileLimit, UInt64(saved.rlim_max), "the runner raised its own limit")
        do {
            try await body(runner)
        } catch {
            await runner.shutdown()
            throw error
        }
        await runner.shutdown()
    }

    /// A descriptor above the job's soft limit (which only the runner's
    /// raised limit allows) and one below it, neither close-on-exec, reach
    /// no job — with close_range, and with each fallback a kernel without it
    /// takes. The last resort once stopped at the restored limit.
    func testNoDescriptorLeaksThroughAnyCloseFallback() async throws {
        try await withLoweredLimitRunner { runner in
            var ends: [Int32] = [0, 0]
            XCTAssertEqual(pipe(&ends), 0)
            let above = dup2(ends[1], 1500)
            let below = dup2(ends[1], 900)
            XCTAssertEqual(above, 1500)
            XCTAssertEqual(below, 900)
            defer { [ends[0], ends[1], above, below].forEach { close($0) } }
            defer { Spawner.forceCloseStrategy(.closeRange) }

            for strategy in [Spawner.CloseStrategy.closeRange, .listProcSelfFD, .closeBelowLimit] {
                Spawner.forceCloseStrategy(strategy)
                let result = try await runner.run(ChildStateTests.listDescriptors)
                XCTAssertEqual(result.outcome, .exited(0), "\(strategy)")
                XCTAssertEqual(result.stdout.text, "0\n1\n2\n", "\(strategy): only stdio reaches the job")

                var limits = JobSpec(.executable("/bin/cat", arguments: ["/proc/self/limits"]))
                limits.output = .combined
                let limitResult = try await runner.run(limits)
                XCTAssertEqual(Self.openFilesLimit(limitResult.stdout.text), "1024", "\(strategy)")
            }
        }
    }

    /// The same as another user: the /proc/self/fd walk must happen before
    /// the user changes (after it the process may not read its own fds).
    func testNoDescriptorLeaksThroughTheProcWalkAsAnotherUser() async throws {
        try XCTSkipIf(getuid() != 0, "changing user needs root")
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        let extra = dup2(ends[1], 700)
        defer { [ends[0], ends[1], extra].forEach { close($0) } }
        Spawner.forceCloseStrategy(.listProcSelfFD)
        defer { Spawner.forceCloseStrategy(.closeRange) }
        var spec = ChildStateTests.listDescriptors
        spec.user = .id(65534)
        spec.group = .id(65534)
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(0), result.stderr.text)
        XCTAssertEqual(result.stdout.text, "0\n1\n2\n")
    }

    static func openFilesLimit(_ limits: String) -> String? {
        limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
    }
}
