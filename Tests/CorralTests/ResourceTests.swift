import Foundation
import XCTest
@testable import Corral

/// The runner within its descriptor budget, and when the host takes the
/// descriptors it counted on.
final class ResourceTests: CorralTestCase {
    private var savedLimit = rlimit()

    override func setUp() async throws {
        getrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &savedLimit)
        try await super.setUp()
    }

    override func tearDown() async throws {
        try await super.tearDown()
        setrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &savedLimit)
    }

    private func lowerSoftLimit(to soft: UInt64) {
        var limit = savedLimit
        limit.rlim_cur = rlim_t(soft)
        XCTAssertEqual(setrlimit(Syscalls.RLIMIT_NOFILE_VALUE, &limit), 0)
    }

    private func runnerWithoutRaising() throws -> Runner {
        var configuration = Runner.Configuration()
        configuration.raiseOpenFileLimit = false
        configuration.reapOrphans = true
        return try Runner(configuration: configuration)
    }

    func testDescriptorBudgetCapsJobsInFlight() throws {
        lowerSoftLimit(to: 256)
        let small = try runnerWithoutRaising()
        defer { shutdownAndWait(small) }
        let cap = small.limits.maxJobsInFlight
        XCTAssertLessThan(cap, 100, "a 256-descriptor limit leaves room for few jobs")

        let results = ResultBox()
        for _ in 0..<(cap * 3) {
            try small.submit(JobSpec(.shell("sleep 0.2")), onCompletion: results.add)
        }
        let all = results.wait(for: cap * 3, upTo: .seconds(60))

        XCTAssertEqual(all.count, cap * 3)
        XCTAssertTrue(all.allSatisfy { $0.outcome == .exited(0) }, "none failed for lack of descriptors")
        // Never more than `cap` alive at once.
        let events = all.flatMap { [($0.timing.spawned!, 1), ($0.timing.delivered, -1)] }.sorted { $0.0 < $1.0 }
        var alive = 0
        var peak = 0
        for (_, change) in events {
            alive += change
            peak = max(peak, alive)
        }
        XCTAssertLessThanOrEqual(peak, cap)
    }

    /// Opens /dev/null until the process is `spare` descriptors short of its limit.
    private func exhaustDescriptors(leaving spare: Int) -> [Int32] {
        var taken: [Int32] = []
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            taken.append(fd)
        }
        for _ in 0..<min(spare, taken.count) { close(taken.removeLast()) }
        return taken
    }

    func testNoDescriptorsAndNothingRunningIsAClearFailure() throws {
        lowerSoftLimit(to: 256)
        let small = try runnerWithoutRaising()
        defer { shutdownAndWait(small) }
        let results = ResultBox()

        let taken = exhaustDescriptors(leaving: 0)
        try small.submit(JobSpec(.shell("echo never")), onCompletion: results.add)
        let result = results.wait(for: 1).first
        taken.forEach { close($0) }

        guard case .failedToStart(let failure)? = result?.outcome else { return XCTFail("\(String(describing: result))") }
        XCTAssertEqual(failure.errno, EMFILE)
        XCTAssertEqual(failure.stage, .resources)
    }

    func testJobsShortOfDescriptorsWaitForRunningOnesInsteadOfFailing() throws {
        lowerSoftLimit(to: 256)
        let small = try runnerWithoutRaising()
        defer { shutdownAndWait(small) }
        let results = ResultBox()

        // Room for one job's spawn (two pipes, a pidfd, a cgroup leaf's two files), not for two.
        let taken = exhaustDescriptors(leaving: 8)
        for index in 0..<5 {
            try small.submit(JobSpec(.shell("sleep 0.1; echo \(index)")), onCompletion: results.add)
        }
        let all = results.wait(for: 5)
        taken.forEach { close($0) }

        XCTAssertEqual(all.count, 5)
        XCTAssertTrue(all.allSatisfy { $0.outcome == .exited(0) }, "\(all.map(\.outcome))")
        XCTAssertEqual(Set(all.map(\.stdout.text)), Set((0..<5).map { "\($0)\n" }))
    }

    func testDroppingARunnerWithoutShutdownStillStopsItsJobsAndThread() throws {
        // Earlier runners' threads may still be on their way out: start from
        // this test case's own runner alone.
        XCTAssertTrue(ProcessTable.wait { ProcessTable.loopThreadCount == 1 })
        let loopsBefore = 1
        let results = ResultBox()
        var id: JobID?
        do {
            var configuration = Runner.Configuration()
            configuration.reapOrphans = true
            let dropped = try Runner(configuration: configuration)
            XCTAssertTrue(ProcessTable.wait { ProcessTable.loopThreadCount == loopsBefore + 1 }, "the loop thread started")
            id = try dropped.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add).id
            XCTAssertNotNil(waitForProcess(of: id!, named: "sleep"))
        }
        let result = results.wait(for: 1).first
        XCTAssertEqual(result?.outcome, .cancelled)
        XCTAssertTrue(ProcessTable.wait { ProcessTable.loopThreadCount == loopsBefore }, "the loop thread ended")
        if let result { assertNothingLeft(result) }
    }
}
