// swift-subprocess 1.0.2 through its ordinary API: run(...) awaited, task
// cancellation at the deadline (its teardown), output as a sequence.
import Foundation
import PeerReport
import Subprocess

let report = PeerReport()
let workload = Workload.parse(Array(CommandLine.arguments.dropFirst()))

@Sendable func runToEnd(_ executable: Executable, _ arguments: [String]) async throws {
    _ = try await run(executable, arguments: Arguments(arguments), output: .discarded)
}

var heap: UnsafeMutableRawPointer?
var start = ContinuousClock.now
switch workload {
case .spawn(let count, let inFlight):
    await report.runJobs(count: count, limit: inFlight) { try await runToEnd(.path("/bin/true"), []) }
case .bigHeap(let mebibytes, let count):
    heap = PeerReport.growHeap(mebibytes: mebibytes)
    start = ContinuousClock.now
    await report.runJobs(count: count, limit: 1) { try await runToEnd(.path("/bin/true"), []) }
case .deadline(let count, let seconds):
    report.setJobs(count)
    await runBounded(count: count, limit: count) {
        let begin = ContinuousClock.now
        let job = Task { try await runToEnd(.path("/bin/sleep"), ["30"]) }
        try? await Task.sleep(for: .seconds(seconds))
        job.cancel()
        switch await job.result {
        case .failure(let error) where !(error is CancellationError):
            report.fail(error)
        default:
            report.delivered(overshootMilliseconds: (PeerReport.seconds(since: begin) - seconds) * 1000)
        }
    }
case .trickle(let count):
    await report.runJobs(count: count, limit: count) { try await runToEnd(.path("/bin/sleep"), ["1"]) }
case .throughput(let bytes):
    report.setJobs(1)
    do {
        let total = try await run(.path("/usr/bin/head"), arguments: ["-c", bytes, "/dev/zero"], input: .none,
                                  output: .sequence, error: .discarded) { execution in
            var total = 0
            for try await buffer in execution.standardOutput { total += buffer.count }
            return total
        }.closureResult
        report.setThroughput(bytes: total, seconds: report.elapsedSeconds)
        report.delivered()
    } catch { report.fail(error) }
}
_ = heap
report.finish(wall: PeerReport.seconds(since: start))
