import Corral
import CorralFormat
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
        /// Submitted jobs whose result came back (not lines answered without running).
        var finishedRuns = 0
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

    /// Records one answered line; true when it is a failure.
    @discardableResult
    func record(outcome: String, success: Bool, duration: Double?, ran: Bool) -> Bool {
        counts.withLock { counts in
            counts.done += 1
            if ran { counts.finishedRuns += 1 }
            counts.byOutcome[outcome, default: 0] += 1
            if !success { counts.failed += 1 }
            if let duration { counts.durations.append(duration) }
        }
        drawProgress(force: false)
        return !success
    }

    var anyFailed: Bool { counts.withLock { $0.failed > 0 } }

    func drawProgress(force: Bool) {
        guard let progressOutput else { return }
        let now = MonotonicInstant.now()
        let line: String? = counts.withLock { counts in
            guard force || (now - counts.lastDraw) >= .milliseconds(100) else { return nil }
            counts.lastDraw = now
            let elapsed = max((now - started).seconds, 0.001)
            let rate = Double(counts.done) / elapsed
            var text = "\r\u{1B}[K\(counts.done)" + (total.map { "/\($0)" } ?? "")
                + " done, \(counts.submitted - counts.finishedRuns) running"
                + ", \(counts.failed) failed, \(counts.byOutcome["timed_out", default: 0]) timed out"
                + ", \(format(rate, digits: 1))/s"
            if let total, rate > 0, counts.done < total {
                text += ", ETA \(format(Double(total - counts.done) / rate, digits: 0))s"
            }
            return text
        }
        // The progress line is stderr's: if writing it fails there is nowhere to say so.
        if let line { try? progressOutput.write(line) }
    }

    /// The closing summary: counts by outcome, wall time, job durations.
    func summary() -> String {
        counts.withLock { counts in
            let wall = (MonotonicInstant.now() - started).seconds
            let outcomes = counts.byOutcome.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            var text = "corral batch: \(counts.done) jobs in \(format(wall, digits: 2))s"
            if !outcomes.isEmpty { text += " (\(outcomes))" }
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
