import Corral
import CorralFormat
import Dispatch
import Foundation
import Synchronization

/// Where `corral batch` answers go: result lines, the joblog and the
/// progress line, written by a thread of its own.
///
/// The runner's loop thread only hands a result over (`deliver`, O(1), never
/// blocks); encoding and every `write(2)` happen here. Each answer holds one
/// slot of the input window until it is written, so a reader that stops
/// reading stops corral reading input and starting jobs — never a deadline.
/// A write error stops the batch (`onFailure`) and is kept, with the count
/// of answers that could not be written, for the exit message.
final class BatchSink: Sendable {
    /// One answer to one input line.
    enum Answer: Sendable {
        /// A job's result; `job` says what the joblog needs.
        case result(JobResult, id: String, line: Int, command: String, sent: Int)
        /// A line answered without running (invalid, or cancelled before it started).
        case text(String, outcome: String)

        /// Anything but an exit 0 (what --fail-fast stops at).
        var failed: Bool {
            switch self {
            case .result(let result, _, _, _, _): result.outcome != .exited(0)
            case .text: true
            }
        }
    }

    /// A failed write to one destination.
    struct Failure: Sendable {
        let destination: String
        let error: WriteError
        var lost = 0
    }

    private struct State {
        var queue: [Answer] = []
        var head = 0
        var finishing = false
        var resultsFailure: Failure?
        var logFailure: Failure?
    }

    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Slots of the input window: taken by the reader before each line,
    /// given back here once that line's answer is written.
    let window: DispatchSemaphore
    private let results: FileOutput
    private let resultsName: String
    private let log: JobLog?
    private let logName: String
    private let stats: BatchStats
    private let failFast: Bool
    /// `--format text`: a readable line per job instead of its JSON.
    private let text: Bool
    private let stop: @Sendable () -> Void

    init(results: FileOutput, resultsName: String, log: JobLog?, logName: String, stats: BatchStats,
         window: Int, failFast: Bool, text: Bool = false, stop: @escaping @Sendable () -> Void) {
        self.text = text
        self.results = results
        self.resultsName = resultsName
        self.log = log
        self.logName = logName
        self.stats = stats
        self.window = DispatchSemaphore(value: window)
        self.failFast = failFast
        self.stop = stop
        Thread { [self] in run() }.start()
    }

    /// Hands an answer over; from any thread, the loop's included. Never blocks.
    /// With --fail-fast, a failure stops the batch here, as soon as it is
    /// known, not once its line is written: the reader submits nothing more
    /// from then on (it may be filling the window meanwhile).
    func deliver(_ answer: Answer) {
        if failFast, answer.failed { stop() }
        let accepted = state.withLock { state -> Bool in
            guard !state.finishing else { return false }
            state.queue.append(answer)
            return true
        }
        if accepted { available.signal() }
    }

    /// Writes what is queued, then ends the thread; returns once it has.
    func finish() {
        state.withLock { $0.finishing = true }
        available.signal()
        finished.wait()
    }

    /// What could not be written, if anything.
    var failures: (results: Failure?, log: Failure?) { state.withLock { ($0.resultsFailure, $0.logFailure) } }

    /// Answers handed over and not yet written.
    var pending: Int { state.withLock { $0.queue.count - $0.head } }

    private func run() {
        while true {
            available.wait()
            let next = state.withLock { state -> Answer?? in
                guard state.head < state.queue.count else { return state.finishing ? .some(nil) : nil }
                let answer = state.queue[state.head]
                state.head += 1
                if state.head > 1024, state.head * 2 > state.queue.count {
                    state.queue.removeFirst(state.head)
                    state.head = 0
                }
                return answer
            }
            guard let next else { continue }  // a wake-up with nothing queued
            guard let answer = next else { break }
            write(answer)
            window.signal()
        }
        finished.signal()
    }

    private func write(_ answer: Answer) {
        let line: String
        switch answer {
        case .result(let result, let id, let number, let command, let sent):
            line = text ? BatchText.line(result, id: id) : JobResultJSON.encode(result, id: id, line: number)
            stats.record(outcome: JobResultJSON.outcomeName(result.outcome), success: result.outcome == .exited(0),
                         duration: result.timing.duration.seconds, ran: true)
            if let log, state.withLock({ $0.logFailure == nil }) {
                do throws(WriteError) {
                    try log.record(sequence: number, command: command, sent: sent, result: result)
                } catch {
                    fail(\.logFailure, Failure(destination: logName, error: error))
                }
            } else if log != nil {
                state.withLock { $0.logFailure?.lost += 1 }
            }
        case .text(let json, let outcome):
            line = text ? BatchText.line(json: json) : json
            stats.record(outcome: outcome, success: false, duration: nil, ran: false)
        }
        guard state.withLock({ $0.resultsFailure == nil }) else {
            state.withLock { $0.resultsFailure?.lost += 1 }
            return
        }
        do throws(WriteError) {
            try results.writeLine(line)
        } catch {
            fail(\.resultsFailure, Failure(destination: resultsName, error: error))
        }
    }

    private func fail(_ field: WritableKeyPath<State, Failure?>, _ failure: Failure) {
        var failure = failure
        failure.lost = 1
        state.withLock { $0[keyPath: field] = failure }
        stop()
    }
}
