// Foundation's Process through its ordinary API: run(), terminationHandler,
// terminate() at the deadline, a Pipe for output.
import Foundation
import PeerReport

let report = PeerReport()
let workload = Workload.parse(Array(CommandLine.arguments.dropFirst()))

@Sendable func runToEnd(_ path: String, _ arguments: [String]) async throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
        process.terminationHandler = { _ in continuation.resume() }
        do { try process.run() } catch { continuation.resume(throwing: error) }
    }
}

var heap: UnsafeMutableRawPointer?
var start = ContinuousClock.now
switch workload {
case .spawn(let count, let inFlight):
    await report.runJobs(count: count, limit: inFlight) { try await runToEnd("/bin/true", []) }
case .bigHeap(let mebibytes, let count):
    heap = PeerReport.growHeap(mebibytes: mebibytes)
    start = ContinuousClock.now
    await report.runJobs(count: count, limit: 1) { try await runToEnd("/bin/true", []) }
case .deadline(let count, let seconds):
    report.setJobs(count)
    await runBounded(count: count, limit: count) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        let begin = ContinuousClock.now
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                process.terminationHandler = { _ in continuation.resume() }
                do {
                    try process.run()
                    DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { process.terminate() }
                } catch { continuation.resume(throwing: error) }
            }
            report.delivered(overshootMilliseconds: (PeerReport.seconds(since: begin) - seconds) * 1000)
        } catch { report.fail(error) }
    }
case .trickle(let count):
    await report.runJobs(count: count, limit: count) { try await runToEnd("/bin/sleep", ["1"]) }
case .throughput(let bytes):
    report.setJobs(1)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/head")
    process.arguments = ["-c", bytes, "/dev/zero"]
    let pipe = Pipe()
    process.standardOutput = pipe
    do {
        try process.run()
        var total = 0
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            total += data.count
        }
        process.waitUntilExit()
        report.setThroughput(bytes: total, seconds: report.elapsedSeconds)
        report.delivered()
    } catch { report.fail(error) }
}
_ = heap
report.finish(wall: PeerReport.seconds(since: start))
