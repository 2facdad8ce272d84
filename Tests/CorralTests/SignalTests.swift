import Foundation
import Synchronization
import XCTest
@testable import Corral

/// Scenario 7: a job killed by someone else's signal.
final class SignalTests: CorralTestCase {
    func testJobKilledFromOutsideIsSignaled() async throws {
        let results = ResultBox()
        let handle = try runner.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])),
                                       onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        XCTAssertEqual(kill(pid, SIGUSR1), 0)

        let result = try XCTUnwrap(results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .signaled(.user1, coreDumped: false))
        XCTAssertEqual(result.leaderStatus, .signaled(.user1, coreDumped: false))
        XCTAssertEqual(result.pid, pid)
        assertNothingLeft(result)
    }

    func testCoreDumpingSignalIsReportedAsSuch() async throws {
        // RLIMIT_CORE 0 may forbid the dump itself; the signal is what matters.
        let result = try await runner.run(.shell("kill -SEGV $$"))
        guard case .signaled(let signal, _) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertEqual(signal, Signal(rawValue: SIGSEGV))
    }
}

/// Collects results delivered on the loop thread.
final class ResultBox: Sendable {
    private let results = Locked<[JobResult]>([])

    var add: @Sendable (JobResult) -> Void { { result in self.results.withLock { $0.append(result) } } }

    var all: [JobResult] { results.withLock { $0 } }

    /// Waits (up to `limit`) for `count` results.
    func wait(for count: Int, upTo limit: Duration = .seconds(30)) -> [JobResult] {
        _ = ProcessTable.wait(upTo: limit) { results.withLock { $0.count >= count } }
        return all
    }

    /// Holds the first job id seen, for tests that only learn it from output.
    final class IDBox: Sendable {
        private let id = Locked<JobID?>(nil)
        func set(_ value: JobID) { id.withLock { if $0 == nil { $0 = value } } }
        func wait() -> JobID? {
            _ = ProcessTable.wait { id.withLock { $0 != nil } }
            return id.withLock { $0 }
        }
    }
}
