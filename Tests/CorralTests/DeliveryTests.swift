import Foundation
import Synchronization
import XCTest
@testable import Corral

/// Host callbacks run off the loop thread, and a host that stops consuming
/// holds up its own job's pipe, never another job's deadline.
final class DeliveryTests: CorralTestCase {
    private static func threadName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testCallbacksNeverRunOnTheLoopThread() async throws {
        let names = Locked<Set<String>>([])
        let result: JobResult = try await withCheckedThrowingContinuation { continuation in
            do {
                try runner.submit(JobSpec(.shell("echo out; echo err >&2")),
                                  onOutput: { _ in names.withLock { _ = $0.insert(DeliveryTests.threadName()) } },
                                  onStart: { _ in names.withLock { _ = $0.insert(DeliveryTests.threadName()) } },
                                  onCompletion: { result in
                                      names.withLock { _ = $0.insert(DeliveryTests.threadName()) }
                                      continuation.resume(returning: result)
                                  })
            } catch {
                continuation.resume(throwing: error)
            }
        }
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(names.withLock { $0 }, ["corral-delivery"])
    }

    /// A consumer that sleeps 10 s in its output handler: the other job's
    /// 1 s deadline holds, the stalled job is stopped at its own deadline
    /// (timed_out), and its pipe was not read meanwhile (bounded memory).
    func testAStalledConsumerDelaysNoDeadlineAndStopsOnlyItsOwnPipe() async throws {
        let stalled = Locked(false)
        var chatty = JobSpec(.executable("yes"))
        chatty.timeout = .seconds(2)
        chatty.outputLimit = .bytes(1 << 20)
        var sleeper = JobSpec(.executable("sleep", arguments: ["30"]))
        sleeper.timeout = .seconds(1)
        let runner = self.runner!
        async let chattyResult = runner.run(chatty) { _ in
            let first = stalled.withLock { was in defer { was = true }; return !was }
            if first { usleep(10_000_000) }
        }
        async let sleeperResult = runner.run(sleeper)
        let (loud, quiet) = try await (chattyResult, sleeperResult)
        XCTAssertEqual(quiet.outcome, .timedOut)
        XCTAssertLessThan(quiet.timing.duration, .seconds(1) + .seconds(1), "the deadline held: \(quiet.timing)")
        XCTAssertEqual(loud.outcome, .timedOut)
        // Its paused pipe never reaches end-of-file: it is force-closed
        // after the drain timeout, like any pipe a job's leftovers hold.
        XCTAssertLessThan(loud.timing.duration, .seconds(2) + JobSpec(.shell("")).drainTimeout + .seconds(1),
                          "its own deadline held too: \(loud.timing)")
        // yes writes gigabytes in 10 s; with its pipe paused past 256 KiB, a
        // little more than that was ever read.
        XCTAssertLessThan(loud.stdout.totalBytes, 4 << 20, "the stalled job's pipe was not read")
    }
}
