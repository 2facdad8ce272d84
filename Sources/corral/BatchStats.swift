import Corral
import CorralFormat
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Counts of a batch as it runs, for the progress line, the summary and the
/// exit code. Keeps one number per job (its duration), not its result.
final class BatchStats: Sendable {
    private struct Counts {
        var byOutcome: [String: Int] = [:]
        var done = 0
        var submitted = 0
        /// Jobs the runner runs at once (its limits); the rest of those
        /// submitted wait in its FIFO queue.
        var slots = Int.max
        /// Submitted jobs whose result came back (not lines answered without running).
        var finishedRuns = 0
        /// Answered lines by class, as the progress line and the summary both
        /// show them: ok (exited 0), timed out, and failed (everything else).
        var ok = 0
        var timedOut = 0
        var failed = 0
        var durations: [Double] = []
        var lastDraw = MonotonicInstant(nanoseconds: 0)
    }

    private let counts = Mutex(Counts())
    let started = MonotonicInstant.now()
    let total: Int?
    let progressOutput: FileOutput?

    init(total: Int?, progress: FileOutput?) {
        self.total = total
        self.progressOutput = progress
    }

    func submitted() { counts.withLock { $0.submitted += 1 } }

    /// The runner's jobs in flight at most (`Runner.limits`).
    var slots: Int {
        get { counts.withLock { $0.slots } }
        set { counts.withLock { $0.slots = newValue } }
    }

    /// Records one answered line.
    func record(outcome: String, success: Bool, duration: Double?, ran: Bool) {
        counts.withLock { counts in
            counts.done += 1
            if ran { counts.finishedRuns += 1 }
            counts.byOutcome[outcome, default: 0] += 1
            if success {
                counts.ok += 1
            } else if outcome == "timed_out" {
                counts.timedOut += 1
            } else {
                counts.failed += 1
            }
            if let duration { counts.durations.append(duration) }
        }
        drawProgress(force: false)
    }

    var anyFailed: Bool { counts.withLock { $0.failed > 0 || $0.timedOut > 0 } }

    func drawProgress(force: Bool) {
        guard let progressOutput else { return }
        let now = MonotonicInstant.now()
        let line: String? = counts.withLock { counts in
            guard force || (now - counts.lastDraw) >= .milliseconds(100) else { return nil }
            counts.lastDraw = now
            let elapsed = max((now - started).seconds, 0.001)
            let rate = Double(counts.done) / elapsed
            // In the runner and unanswered: as many run as it has slots
            // (it starts a job as soon as a slot is free), the rest queue.
            let inRunner = max(0, counts.submitted - counts.finishedRuns)
            let running = min(inRunner, counts.slots)
            let queued = inRunner - running
            var text = "\r\u{1B}[K\(counts.done)" + (total.map { "/\($0)" } ?? "")
                + " done (" + BatchStats.classes(counts) + "), \(running) running, \(queued) queued"
                + ", \(format(rate, digits: 1))/s"
            if let total, rate > 0, counts.done < total {
                text += ", ETA \(format(Double(total - counts.done) / rate, digits: 0))s"
            }
            return text
        }
        // The progress line is stderr's: if writing it fails there is nowhere to say so.
        if let line { try? progressOutput.write(line) }
    }

    /// The same three classes in the progress line and the summary.
    private static func classes(_ counts: Counts) -> String {
        "\(counts.ok) ok, \(counts.failed) failed, \(counts.timedOut) timed out"
    }

    /// Redraws the progress line every 250 ms from now until
    /// `stopTicking`, so it shows what runs from the first second, not only
    /// when a job ends.
    func startTicking() {
        guard progressOutput != nil else { return }
        ticker.withLock { $0.running = true }
        Thread { [self] in
            while !ticker.withLock({ $0.stopRequested }) {
                drawProgress(force: true)
                usleep(250_000)
            }
            tickerEnded.signal()
        }.start()
    }

    /// Stops the redrawing; returns once it has stopped.
    func stopTicking() {
        let running = ticker.withLock { ticker -> Bool in
            ticker.stopRequested = true
            return ticker.running
        }
        if running { tickerEnded.wait() }
    }

    private let ticker = Mutex((running: false, stopRequested: false))
    private let tickerEnded = DispatchSemaphore(value: 0)

    /// The closing summary: counts by outcome, wall time, job durations.
    func summary() -> String {
        counts.withLock { counts in
            let wall = (MonotonicInstant.now() - started).seconds
            let outcomes = counts.byOutcome.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            var text = "corral batch: \(counts.done) \(counts.done == 1 ? "job" : "jobs") in \(format(wall, digits: 2))s: " + BatchStats.classes(counts)
            if !outcomes.isEmpty { text += " (outcomes: \(outcomes))" }
            let sorted = counts.durations.sorted()
            if !sorted.isEmpty {
                func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))] }
                text += "; job duration p50 \(format(percentile(0.5), digits: 3))s"
                    + " p95 \(format(percentile(0.95), digits: 3))s max \(format(sorted.last!, digits: 3))s"
            }
            return text
        }
    }
}

/// A number with a fixed count of decimals.
func format(_ value: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if digits == 0, text.hasSuffix(".0") { text.removeLast(2) }
    return text
}
