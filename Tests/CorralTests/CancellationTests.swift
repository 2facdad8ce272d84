import Foundation
import XCTest
@testable import Corral

/// Scenario 9: cancellation and shutdown.
final class CancellationTests: CorralTestCase {
    func testCancellingARunningJobThroughItsHandle() throws {
        let results = ResultBox()
        let handle = try runner.submit(JobSpec(.shell("echo started; exec sleep 1000")), onCompletion: results.add)
        XCTAssertNotNil(waitForProcess(of: handle.id, named: "sleep"))

        handle.cancel()

        let result = try XCTUnwrap(results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .cancelled)
        XCTAssertEqual(result.leaderStatus, .signaled(.terminate, coreDumped: false))
        XCTAssertEqual(result.stdout.text, "started\n")
        assertNothingLeft(result)
    }

    func testCancellingTheAwaitingTaskCancelsTheJob() async throws {
        let runner = self.runner!
        let started = ResultBox.IDBox()
        let task = Task {
            try await runner.run(JobSpec(.shell("echo started; exec sleep 1000"))) { chunk in started.set(chunk.jobID) }
        }
        let id = try XCTUnwrap(started.wait())
        XCTAssertNotNil(waitForProcess(of: id, named: "sleep"))

        task.cancel()

        let result = try await task.value
        XCTAssertEqual(result.id, id)
        XCTAssertEqual(result.outcome, .cancelled)
        XCTAssertEqual(result.leaderStatus, .signaled(.terminate, coreDumped: false))
        assertNothingLeft(result)
    }

    func testCancellingAQueuedJobDeliversAtOnceAndNeverRunsIt() async throws {
        var configuration = Runner.Configuration()
        configuration.maxJobsInFlight = 1
        let single = try Runner(configuration: configuration)
        let results = ResultBox()
        let blocker = try single.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
        XCTAssertNotNil(waitForProcess(of: blocker.id, named: "sleep"))
        let marker = scratch.appendingPathComponent("ran").path
        let queued = try single.submit(JobSpec(.shell("touch '\(marker)'")), onCompletion: results.add)

        queued.cancel()

        XCTAssertEqual(results.wait(for: 1).first?.id, queued.id, "delivered while the blocker still runs")
        let result = try XCTUnwrap(results.all.first)
        XCTAssertEqual(result.outcome, .cancelled)
        XCTAssertNil(result.pid)
        XCTAssertNil(result.timing.spawned)
        blocker.cancel()
        XCTAssertEqual(results.wait(for: 2).count, 2)
        await single.shutdown()
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the queued job never ran")
    }

    func testShutdownWithRunningAndQueuedJobsDeliversEveryResult() async throws {
        var configuration = Runner.Configuration()
        configuration.maxJobsInFlight = 2
        configuration.reapOrphans = true
        let small = try Runner(configuration: configuration)
        let results = ResultBox()
        var ids: [JobID] = []
        for _ in 0..<5 {
            ids.append(try small.submit(JobSpec(.shell("sleep 1000 & exec sleep 1000")), onCompletion: results.add).id)
        }
        XCTAssertNotNil(waitForProcess(of: ids[0], named: "sleep"))
        XCTAssertNotNil(waitForProcess(of: ids[1], named: "sleep"))

        await small.shutdown()

        let all = results.all
        XCTAssertEqual(all.count, 5, "every job has its result when shutdown returns")
        XCTAssertEqual(Set(all.map(\.id)), Set(ids))
        XCTAssertTrue(all.allSatisfy { $0.outcome == .cancelled })
        XCTAssertEqual(all.filter { $0.pid != nil }.count, 2, "two had started")
        XCTAssertEqual(small.diagnostics.loopCloseStatus, 0)
        for result in all { assertNothingLeft(result) }

        do {
            _ = try await small.run(JobSpec(.executable("/bin/true")))
            XCTFail("a shut-down runner took a job")
        } catch let error as CorralError {
            XCTAssertEqual(error.code, .shutDown)
        }
        await small.shutdown()  // twice is fine
    }

    /// Cancelled at every moment of the lifecycle: queued, handed to the
    /// spawn thread and not yet answered, just spawned, running. Each of
    /// 300 jobs is cancelled right after its submission: every result is
    /// `cancelled`, and no process of any of them is left.
    func testCancellingAtAnyMomentEndsEveryJobAndLeavesNothing() throws {
        let results = ResultBox()
        var ids = Set<JobID>()
        for index in 0..<300 {
            let handle = try runner.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
            ids.insert(handle.id)
            if index % 3 == 0 { handle.cancel() }
            if index % 3 == 1 { DispatchQueue.global().async { handle.cancel() } }
            if index % 3 == 2 { DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(index)) { handle.cancel() } }
        }
        let all = results.wait(for: 300, upTo: .seconds(120))
        XCTAssertEqual(all.count, 300)
        XCTAssertEqual(Set(all.map(\.id)), ids)
        XCTAssertEqual(all.filter { $0.outcome != .cancelled }.map(\.outcome), [])
        for result in all { assertNothingLeft(result) }
        print("cancelled at any moment: \(all.filter { $0.pid == nil }.count) before a spawn, \(all.filter { $0.pid != nil }.count) after")
    }
}
