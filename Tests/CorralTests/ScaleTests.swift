import Foundation
import XCTest
@testable import Corral

/// Scenario 8: a thousand jobs at once on one loop thread.
final class ScaleTests: CorralTestCase {
    func testThousandMixedJobsEachGetExactlyOneRightResultWithoutNewThreads() throws {
        // Warm the loop, then count threads.
        let warm = ResultBox()
        try runner.submit(JobSpec(.executable("/bin/true")), onCompletion: warm.add)
        XCTAssertEqual(warm.wait(for: 1).count, 1)
        let threadsBefore = ProcessTable.threadCount

        enum Kind { case sleeper, quick(Int32), printer(Int) }
        var expected: [JobID: Kind] = [:]
        let results = ResultBox()
        for index in 0..<1000 {
            let kind: Kind
            var spec: JobSpec
            switch index % 3 {
            case 0:
                kind = .sleeper
                spec = JobSpec(.executable("/bin/sleep", arguments: ["30"]))
                spec.timeout = .seconds(1)
            case 1:
                let code = Int32(index % 7)
                kind = .quick(code)
                spec = JobSpec(.executable("/bin/sh", arguments: ["-c", "exit \(code)"]))
            default:
                kind = .printer(index)
                spec = JobSpec(.executable("/bin/echo", arguments: ["job-\(index)"]))
            }
            let handle = try runner.submit(spec, onCompletion: results.add)
            expected[handle.id] = kind
        }

        var maxThreads = threadsBefore
        _ = ProcessTable.wait(upTo: .seconds(120)) {
            maxThreads = max(maxThreads, ProcessTable.threadCount)
            return results.all.count >= 1000
        }
        usleep(200_000)  // a duplicate delivery would show up here
        let all = results.all

        XCTAssertEqual(all.count, 1000)
        XCTAssertEqual(Set(all.map(\.id)).count, 1000, "every result delivered exactly once")
        XCTAssertEqual(maxThreads, threadsBefore, "thread count is constant while jobs run")
        for result in all {
            switch expected[result.id] {
            case .sleeper?:
                XCTAssertEqual(result.outcome, .timedOut, "\(result.id)")
            case .quick(let code)?:
                XCTAssertEqual(result.outcome, .exited(code), "\(result.id)")
            case .printer(let index)?:
                XCTAssertEqual(result.outcome, .exited(0))
                XCTAssertEqual(result.stdout.text, "job-\(index)\n")
            case nil:
                XCTFail("unknown job \(result.id)")
            }
        }
        for result in all where result.outcome == .timedOut {
            assertNothingLeft(result)
        }
    }

    func testInFlightLimitQueuesTheRestInOrder() throws {
        // A separate runner with room for two jobs at a time.
        var configuration = Runner.Configuration()
        configuration.maxJobsInFlight = 2
        let small = try Runner(configuration: configuration)
        defer { shutdownAndWait(small) }
        XCTAssertEqual(small.limits.maxJobsInFlight, 2)

        let results = ResultBox()
        for index in 0..<6 {
            var spec = JobSpec(.shell("sleep 0.1; echo \(index)"))
            spec.name = String(index)
            try small.submit(spec, onCompletion: results.add)
        }
        let all = results.wait(for: 6)
        XCTAssertEqual(all.count, 6)
        // Admitted in order. Jobs admitted together (two slots) are cloned
        // on different spawn threads and may come up in either order; one
        // submitted two or more places later never starts first.
        let spawnedAt = Dictionary(uniqueKeysWithValues: all.map { (Int($0.name!)!, $0.timing.spawned!) })
        for earlier in 0..<6 {
            for later in (earlier + 2)..<max(earlier + 2, 6) {
                XCTAssertLessThan(spawnedAt[earlier]!, spawnedAt[later]!, "FIFO: \(earlier) before \(later)")
            }
        }
        // Never more than two at once: each spawn after the first two waits for a finish.
        let sorted = all.sorted { $0.timing.spawned! < $1.timing.spawned! }
        for index in 2..<sorted.count {
            let finishedBefore = sorted.filter { $0.timing.delivered <= sorted[index].timing.spawned! }.count
            XCTAssertGreaterThanOrEqual(finishedBefore, index - 1)
        }
    }

    func testOpenFileLimitIsRaisedToTheHardLimit() {
        let limits = Syscalls.openFileLimits()
        XCTAssertEqual(limits.soft, limits.hard)
        XCTAssertEqual(runner.limits.openFileLimit, limits.hard)
        XCTAssertGreaterThan(runner.limits.maxJobsInFlight, 1000)
    }
}

extension XCTestCase {
    /// Shuts a runner down from synchronous code.
    func shutdownAndWait(_ runner: Runner) {
        let done = expectation(description: "shutdown")
        Task {
            await runner.shutdown()
            done.fulfill()
        }
        wait(for: [done], timeout: 60)
        XCTAssertEqual(runner.diagnostics.loopCloseStatus, 0)
    }
}
