import XCTest
@testable import Corral

/// Spawning is done in slices of a few milliseconds per loop iteration, so
/// a deadline due while thousands of admitted jobs are being spawned fires
/// between slices, not after the last spawn.
final class SpawnSliceTests: CorralTestCase {
    func testADeadlineFiresWhileThousandsOfJobsAreStillBeingSpawned() async throws {
        let runner = self.runner!
        var sleeper = JobSpec(.executable("sleep", arguments: ["30"]))
        sleeper.timeout = .milliseconds(50)
        sleeper.output = .discarded
        var quick = JobSpec(.executable("/bin/true"))
        quick.output = .discarded
        // The sleeper is submitted first; the others are all admitted at
        // once (the in-flight limit is in the thousands).
        let sleeperResult = Locked<JobResult?>(nil)
        try runner.submit(sleeper) { result in sleeperResult.withLock { $0 = result } }
        let rest = quick
        let results: [JobResult] = try await withThrowingTaskGroup(of: JobResult.self) { group in
            for _ in 0..<2000 { group.addTask { try await runner.run(rest) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        await runner.shutdown()  // every callback has run: the sleeper's result is in
        let timedOut = try XCTUnwrap(sleeperResult.withLock { $0 })
        XCTAssertEqual(timedOut.outcome, .timedOut)
        let lastSpawn = try XCTUnwrap(results.compactMap(\.timing.spawned).max())
        XCTAssertEqual(results.filter { $0.outcome == .exited(0) }.count, 2000)
        XCTAssertLessThan(timedOut.timing.delivered, lastSpawn,
                          "the deadline was served between spawn slices, not after the last of 2,000 spawns")
    }
}
