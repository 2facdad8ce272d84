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

    /// Scenario "child state": a job sees only descriptors 0–2, an empty
    /// signal mask, default dispositions (SIGPIPE too, though this process
    /// ignores it and the loop thread blocks it), blocking stdio (its stdin
    /// here is this process's, made non-blocking), the open-files limit this
    /// process had before the runner raised its own, and the nice value of
    /// the thread that made the runner (not the loop's raised one), in the
    /// normal scheduling class.
    func testJobSeesAFreshProcessState() async throws {
        let previousPipe = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previousPipe) }
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        let savedStdin = dup(STDIN_FILENO)
        XCTAssertEqual(fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK), 0)
        XCTAssertEqual(dup2(ends[0], STDIN_FILENO), STDIN_FILENO)
        defer {
            dup2(savedStdin, STDIN_FILENO)
            [savedStdin, ends[0], ends[1]].forEach { close($0) }
        }
        let hostNice = try XCTUnwrap(ProcessTable.nice(fromStat: try String(contentsOfFile: "/proc/thread-self/stat",
                                                                          encoding: .utf8)))

        try await withLoweredLimitRunner { runner in
            let descriptors = try await runner.run(ChildStateTests.listDescriptors)
            XCTAssertEqual(descriptors.stdout.text, "0\n1\n2\n", "only stdio reaches the job")

            var probe = JobSpec(.executable("/bin/cat", arguments: [
                "/proc/self/status", "/proc/self/limits", "/proc/self/stat",
                "/proc/self/fdinfo/0", "/proc/self/fdinfo/1", "/proc/self/fdinfo/2",
            ]))
            probe.input = .inherit
            let result = try await runner.run(probe)
            XCTAssertEqual(result.outcome, .exited(0), result.stderr.text)
            let lines = result.stdout.text.split(separator: "\n").map(String.init)
            func field(_ name: String) -> String? {
                lines.first { $0.hasPrefix(name + ":") }?.dropFirst(name.count + 1)
                    .trimmingCharacters(in: .whitespaces)
            }
            XCTAssertEqual(field("SigBlk"), "0000000000000000", "empty signal mask")
            XCTAssertEqual(field("SigIgn"), "0000000000000000", "no signal ignored, SIGPIPE included")
            XCTAssertEqual(Self.openFilesLimit(result.stdout.text), "1024", "the original soft limit")
            let stat = try XCTUnwrap(lines.first { $0.contains(" (cat) ") })
            XCTAssertEqual(ProcessTable.nice(fromStat: stat), hostNice, "the host's nice value")
            XCTAssertEqual(ProcessTable.policy(fromStat: stat), 0, "the normal class, not the loop's real-time one")
            let flags = lines.filter { $0.hasPrefix("flags:") }
                .compactMap { Int($0.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8) }
            XCTAssertEqual(flags.count, 3)
            for (fd, value) in flags.enumerated() {
                XCTAssertEqual(Int32(value) & O_NONBLOCK, 0, "fd \(fd) is blocking")
            }
        }
    }

    static func openFilesLimit(_ limits: String) -> String? {
        limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
    }
}
