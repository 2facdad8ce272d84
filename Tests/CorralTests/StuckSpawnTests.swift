import Foundation
import XCTest
import CorralTestSupport
@testable import Corral

/// A child stuck between clone and exec: here it joins a leaf under a
/// frozen cgroup v2 (as with `systemctl freeze`, or a hung filesystem under
/// its working directory), and is frozen before its exec. The spawn thread
/// waits in the clone meanwhile; the job's deadline and its cancel must
/// still end it, through the child's pidfd.
final class StuckSpawnTests: CorralTestCase {
    private struct FrozenCgroup {
        let cgroup: PrivateCgroup
        var path: String { cgroup.path }

        init() throws {
            cgroup = try XCTUnwrap(PrivateCgroup(), "a private cgroup v2")
            guard FileManager.default.fileExists(atPath: cgroup.path + "/cgroup.freeze") else {
                cgroup.remove()
                throw XCTSkip("no cgroup.freeze (kernel before 5.2)")
            }
        }

        func set(frozen: Bool) throws {
            try (frozen ? "1" : "0").write(toFile: path + "/cgroup.freeze", atomically: false, encoding: .utf8)
        }

        /// The processes in it and below (children that joined their leaf).
        var members: Int {
            var count = 0
            let walker = FileManager.default.enumerator(atPath: path)
            while let entry = walker?.nextObject() as? String {
                guard entry.hasSuffix("cgroup.procs") else { continue }
                count += ((try? String(contentsOfFile: path + "/" + entry, encoding: .utf8)) ?? "")
                    .split(separator: "\n").count
            }
            return count
        }

        func remove() {
            try? set(frozen: false)
            cgroup.remove()
        }
    }

    private func frozenRunner(_ frozen: FrozenCgroup) throws -> Runner {
        var configuration = self.configuration
        configuration.containment = .cgroup(under: frozen.path)
        let runner = try Runner(configuration: configuration)
        XCTAssertEqual(runner.containment.tier, .cgroup)
        try frozen.set(frozen: true)  // after the runner made its directory
        return runner
    }

    func testTheDeadlineEndsJobsWhoseChildIsStuckBeforeExecAndQueuedSpawnsGoOn() async throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup, "cgroup v2 unavailable: \(runner.containment.note ?? "?")")
        let frozen = try FrozenCgroup()
        defer { frozen.remove() }
        let stuck = try frozenRunner(frozen)

        // More jobs than spawn threads: those queued behind a stuck spawn
        // reach a thread once the stuck one is killed, and are stuck in turn.
        let count = EventLoop.spawnThreads + 2
        var spec = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))
        spec.timeout = .seconds(1)
        spec.killGrace = .milliseconds(200)
        let results = ResultBox()
        let started = ContinuousClock.now
        for _ in 0..<count { _ = try stuck.submit(spec, onCompletion: results.add) }

        let all = results.wait(for: count, upTo: .seconds(30))
        XCTAssertEqual(all.count, count, "every job has its result while the cgroup is still frozen")
        XCTAssertEqual(all.map(\.outcome), Array(repeating: .timedOut, count: all.count))
        // Two rounds of one timeout each at most, with generous slack.
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2 * 1 + 10))
        for result in all {
            XCTAssertEqual(result.leaderStatus, .signaled(.kill, coreDumped: false), "the stuck child was killed: \(result)")
            // Its deadline ran from the clone, and the result says so.
            XCTAssertGreaterThanOrEqual(result.timing.duration, spec.timeout!, "\(result.id): \(result.timing)")
            let spawned = try XCTUnwrap(result.timing.spawned)
            XCTAssertGreaterThanOrEqual(spawned, result.timing.submitted)
            assertNothingLeft(result)
        }
        await stuck.shutdown()
        XCTAssertEqual(stuck.diagnostics.loopCloseStatus, 0)
    }

    func testCancelAndShutdownEndAJobWhoseChildIsStuckBeforeExec() async throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup, "cgroup v2 unavailable: \(runner.containment.note ?? "?")")
        let frozen = try FrozenCgroup()
        defer { frozen.remove() }
        let stuck = try frozenRunner(frozen)

        let results = ResultBox()
        let cancelled = try stuck.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
        let other = try stuck.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
        // Both are waiting for their exec (no timeout: only a stop ends them).
        XCTAssertTrue(ProcessTable.wait { frozen.members == 2 }, "both children joined their frozen leaves")
        cancelled.cancel()
        let first = try XCTUnwrap(results.wait(for: 1, upTo: .seconds(10)).first, "the cancel acted")
        XCTAssertEqual(first.id, cancelled.id)
        XCTAssertEqual(first.outcome, .cancelled)

        // Shutdown cancels the other the same way, and does not hang.
        await stuck.shutdown()
        let second = try XCTUnwrap(results.all.first { $0.id == other.id })
        XCTAssertEqual(second.outcome, .cancelled)
        for result in results.all { assertNothingLeft(result) }
        XCTAssertEqual(stuck.diagnostics.loopCloseStatus, 0)
    }

    /// The spawn threads are shared by the jobs of a runner, and the orphan
    /// reaper by every runner of the process: a stuck child holds neither.
    /// Jobs queued behind stuck spawns are withdrawn when cancelled, and
    /// another runner in the process keeps spawning, its children reaped.
    func testStuckSpawnsHoldUpNeitherCancelsQueuedBehindThemNorAnotherRunner() async throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup, "cgroup v2 unavailable: \(runner.containment.note ?? "?")")
        XCTAssertTrue(configuration.reapOrphans, "the reaper is what a stuck spawn could hold up")
        let frozen = try FrozenCgroup()
        defer { frozen.remove() }
        let stuck = try frozenRunner(frozen)

        let results = ResultBox()
        let sleeper = JobSpec(.executable("/bin/sleep", arguments: ["1000"]))  // no timeout
        for _ in 0..<EventLoop.spawnThreads { _ = try stuck.submit(sleeper, onCompletion: results.add) }
        XCTAssertTrue(ProcessTable.wait { frozen.members == EventLoop.spawnThreads }, "every spawn thread holds a stuck child")
        // One more per spawn thread, queued behind the stuck ones, cancelled.
        let queued = try (0..<EventLoop.spawnThreads).map { _ in try stuck.submit(sleeper, onCompletion: results.add) }
        queued.forEach { $0.cancel() }
        let withdrawn = results.wait(for: queued.count, upTo: .seconds(10))
        XCTAssertEqual(Set(withdrawn.map(\.id)), Set(queued.map(\.id)), "the queued ones, cancelled at once")
        XCTAssertEqual(withdrawn.map(\.outcome), Array(repeating: .cancelled, count: withdrawn.count))

        // Another runner of this process spawns and its children are reaped
        // (each exit is a SIGCHLD for the reaper) while those are stuck.
        let other = try Runner(configuration: configuration)
        for _ in 0..<8 {
            let result = try await other.run(JobSpec(.executable("/bin/true")))
            XCTAssertEqual(result.outcome, .exited(0))
        }
        await other.shutdown()

        await stuck.shutdown()
        XCTAssertEqual(results.all.count, 2 * EventLoop.spawnThreads)
        XCTAssertEqual(Set(results.all.map(\.outcome)), [.cancelled])
        XCTAssertEqual(stuck.diagnostics.loopCloseStatus, 0)
    }
}
