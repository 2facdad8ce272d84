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

    func testCancelledBeforeItStartsNeverRuns() async throws {
        let runner = self.runner!
        let marker = scratch.appendingPathComponent("ran").path
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await runner.run(JobSpec(.shell("touch '\(marker)'")))
        }
        let result = try await task.value
        XCTAssertEqual(result.outcome, .cancelled)
        // It may have been spawned before the cancel reached the loop; if so it was stopped.
        if result.pid == nil { XCTAssertFalse(FileManager.default.fileExists(atPath: marker)) }
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
}
