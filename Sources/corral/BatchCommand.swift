import ArgumentParser
import Corral
import CorralFormat
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `corral batch`: thousands of jobs from JSON Lines, results as they finish.
struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run jobs from JSON Lines, one spec per line; write one result line per input line.",
        discussion: """
            Each input line is a job spec, for example:
              {"id": "build", "argv": ["make", "-j4"], "timeout": "10m"}
              {"shell": "sleep 5; echo done", "timeout": 2, "env": {"MODE": "ci"}}
            Fields: id, argv | shell, env, unset_env, clear_env, cwd, stdin, timeout, signal,
            kill_after, drain, max_output, combine_output, leave_running, user, group.
            Blank lines are skipped. A line that is not a valid spec gets a result with
            outcome "invalid_spec" and the batch goes on.

            Examples:
              corral batch examples/jobs.jsonl
              corral batch jobs.jsonl -j 128 --timeout 30s --output results.jsonl --joblog jobs.log
              generate-jobs | corral batch - --fail-fast

            Exit codes: 0 every job exited 0; 1 a job failed, timed out, was cancelled or
            was invalid; 125 corral's own error; 130/143/129 when interrupted.
            """)

    @Argument(help: ArgumentHelp("JSON Lines file of job specs; - or nothing for standard input.", valueName: "file"))
    var input: String?
    @Option(name: [.customShort("j"), .customLong("jobs")], parsing: .unconditional, help: ArgumentHelp("Jobs in flight at once.", valueName: "n"))
    var jobs: Int = 64
    @Option(parsing: .unconditional, help: ArgumentHelp("Timeout for specs that give none.", valueName: "duration"))
    var timeout: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Write result lines here instead of standard output.", valueName: "file"))
    var output: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Also write GNU parallel's joblog here.", valueName: "file"))
    var joblog: String?
    @Option(name: .customLong("max-output"), parsing: .unconditional, help: ArgumentHelp("Bytes kept per stream for specs that give none (default 1MiB, 0 = unlimited).", valueName: "size"))
    var maxOutput: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Result lines as json (JSON Lines, docs/result.md) or text (one readable line per job: id, outcome, exit, duration, first line of the error).", valueName: "format"))
    var format: String = "json"
    @Flag(name: .customLong("fail-fast"), help: "Stop at the first job that does not exit 0: what runs is stopped, nothing is started once the failure is known, the rest are answered cancelled.")
    var failFast = false
    @Flag(help: "No progress line and no summary.")
    var quiet = false
    @Flag(help: "Show the progress line even when stderr is not a terminal.")
    var progress = false
    @Option(help: ContainmentOption.help)
    var containment: String = "auto"

    /// `-j` at most: more than the pid space of most hosts (32768 by default).
    static let maximumJobs = 100_000

    func validate() throws {
        guard (1...BatchCommand.maximumJobs).contains(jobs) else {
            throw ValidationError("--jobs: expected a number of jobs from 1 to \(BatchCommand.maximumJobs), got \(jobs)")
        }
        if let timeout {
            guard let limit = DurationText.parse(timeout) else {
                throw ValidationError("--timeout: expected \(DurationText.accepted), got '\(timeout)'")
            }
            guard limit > .zero else { throw ValidationError("--timeout: must be more than 0 (leave it out for no timeout)") }
        }
        guard ["json", "text"].contains(format) else {
            throw ValidationError("--format: expected json or text, got '\(format)'")
        }
        if let maxOutput, SizeText.parse(maxOutput) == nil {
            throw ValidationError("--max-output: expected \(SizeText.accepted), got '\(maxOutput)'")
        }
        _ = try ContainmentOption.parse(containment)  // before any file is opened
    }

    func run() throws {
        var defaults = JobSpecJSON.Defaults()
        defaults.timeout = timeout.flatMap(DurationText.parse)
        if let bytes = maxOutput.flatMap(SizeText.parse) { defaults.outputLimit = bytes == 0 ? .unlimited : .bytes(bytes) }

        let reader: LineReader
        let results: FileOutput
        let log: JobLog?
        do {
            // Refused before anything is opened for writing: truncating
            // would destroy the very input it was meant to answer.
            try OutputPaths.refuseOverwriting(input: input, outputs: [("--output", output), ("--joblog", joblog)])
            if output == nil, ProcessSetup.closedAtStart.contains(STDOUT_FILENO) {
                throw CLIError("cannot write the results: standard output is closed (give --output FILE)")
            }
            reader = try LineReader(path: input)
            // Both opened, and the joblog's header written, before the
            // results file is emptied: a joblog that cannot be opened or
            // written leaves an existing results file as it was.
            let resultsFile = try output.map(FileOutput.open)
            let logFile = try joblog.map(FileOutput.open)
            if let logFile, let joblog {
                try logFile.truncate(joblog)
                do { log = try JobLog(output: logFile) } catch {
                    throw CLIError("cannot write the joblog to \(joblog): \(error)")
                }
            } else {
                log = nil
            }
            if let resultsFile, let output { try resultsFile.truncate(output) }
            results = resultsFile ?? .standardOutput
        } catch let error as CLIError {
            FileOutput.standardError.say("corral: \(error)")
            throw ExitCode(ExitCodes.corralError)
        }
        let showProgress = !quiet && (progress || FileOutput.standardError.isTerminal)
        let stats = BatchStats(total: showProgress ? LineReader.countLines(path: input) : nil,
                               progress: showProgress ? .standardError : nil)

        let forwarder = SignalForwarder()  // before the runner's thread exists
        var configuration = Runner.Configuration()
        configuration.containment = try ContainmentOption.parse(containment)
        configuration.reapOrphans = true
        configuration.maxJobsInFlight = jobs
        let runner = try Runner(configuration: configuration)
        stats.slots = runner.limits.maxJobsInFlight
        let control = BatchControl()
        let stop: @Sendable () -> Void = {
            guard control.stop() else { return }
            // Shutdown cancels what is queued and stops what runs; each still gets its result.
            Task { await runner.shutdown() }
        }
        // At most 2 × jobs lines read and not yet answered: input is read as
        // it is needed, and not at all while the answers cannot be written.
        // With --fail-fast, jobs only: none waits in the runner's queue, so a
        // slot a failure frees is not refilled (in the same loop iteration)
        // before the failure's answer, handed to the sink, stops the batch.
        let sink = BatchSink(results: results, resultsName: output ?? "standard output", log: log,
                             logName: joblog ?? "", stats: stats, window: failFast ? jobs : jobs * 2, failFast: failFast,
                             text: format == "text", stop: stop)
        forwarder.onSignal { number in
            if forwarder.count == 1 {
                stop()
                return
            }
            // A second signal: end now, once what runs has had its stop
            // sequence (bounded by its grace), without waiting for a reader.
            shutdown(runner)
            FileOutput.standardError.sayIfWritable("\ncorral: stopped at a second signal; \(sink.pending) answers were not written\n")
            _exit(128 + number)
        }

        stats.startTicking()
        let readingEnded = DispatchSemaphore(value: 0)
        let lines = BatchLines(reader: reader, defaults: defaults, sink: sink, runner: runner, control: control,
                               stats: stats, stop: stop, failFast: failFast)
        Thread {
            lines.readAll()
            control.inputEnded()
            readingEnded.signal()
        }.start()
        // Until the input ends, or a stop: a pipe (tail -f) may never end, so
        // corral does not wait for it once stopped; a regular file is read
        // to its end quickly, each line answered.
        control.waitForInputEndOrStop()
        if !control.isInputEnded, lines.inputIsRegularFile { readingEnded.wait() }
        control.closeGate()
        control.outstanding.wait()
        sink.finish()
        shutdown(runner)
        stats.stopTicking()
        if showProgress { stats.drawProgress(force: true); FileOutput.standardError.say("") }
        if !quiet { FileOutput.standardError.say(stats.summary()) }
        try finish(failures: sink.failures, readError: control.isInputEnded ? reader.readError : nil,
                 lastLine: lines.lastLine, signal: forwarder.signal, failed: stats.anyFailed)
    }

    /// The exit code, after saying what went wrong: a reader gone from the
    /// results is 141 like any filter; a failed write is 125 with what was lost.
    private func finish(failures: (results: BatchSink.Failure?, log: BatchSink.Failure?), readError: CLIError?,
                      lastLine: Int, signal: Int32?, failed: Bool) throws -> Never {
        var code: Int32?
        if let failure = failures.results {
            if failure.error.readerGone {
                code = 128 + SIGPIPE
            } else {
                FileOutput.standardError.say("corral: writing results to \(failure.destination) failed: \(failure.error); "
                    + "\(failure.lost) result lines were not written, and the batch was stopped")
                code = ExitCodes.corralError
            }
        }
        if let failure = failures.log {
            FileOutput.standardError.say("corral: writing the joblog to \(failure.destination) failed: \(failure.error); "
                + "\(failure.lost) joblog lines were not written, and the batch was stopped")
            code = code ?? ExitCodes.corralError
        }
        if let readError {
            FileOutput.standardError.say("corral: \(readError) (after line \(lastLine)); the lines after it were not run")
            code = code ?? ExitCodes.corralError
        }
        if let code { throw ExitCode(code) }
        if let signal { throw ExitCode(128 + signal) }
        throw ExitCode(failed ? 1 : 0)
    }
}

/// Reads the input and starts a job per line, on a thread of its own (a
/// read can block on a pipe for ever).
final class BatchLines: Sendable {
    private let reader: LineReaderBox
    private let defaults: JobSpecJSON.Defaults
    private let sink: BatchSink
    private let runner: Runner
    private let control: BatchControl
    private let stats: BatchStats
    private let stop: @Sendable () -> Void
    private let failFast: Bool
    let inputIsRegularFile: Bool
    private let last = Mutex(0)

    init(reader: LineReader, defaults: JobSpecJSON.Defaults, sink: BatchSink, runner: Runner, control: BatchControl,
         stats: BatchStats, stop: @escaping @Sendable () -> Void, failFast: Bool) {
        self.reader = LineReaderBox(reader)
        self.defaults = defaults
        self.sink = sink
        self.runner = runner
        self.control = control
        self.stats = stats
        self.stop = stop
        self.failFast = failFast
        inputIsRegularFile = reader.isRegularFile
    }

    /// The number of the last line read.
    var lastLine: Int { last.withLock { $0 } }

    func readAll() {
        var lineNumber = 0
        while let line = reader.next() {
            lineNumber += 1
            last.withLock { $0 = lineNumber }
            if LineReader.isBlank(line) { continue }
            // After a stop, a pipe is not read any further; a file is
            // answered to its end, each line "cancelled".
            if control.isStopped, !inputIsRegularFile { return }
            sink.window.wait()
            let decoded: JobSpecJSON.Decoded
            switch JobSpecJSON.decode(bytes: line, defaultID: String(lineNumber), defaults: defaults) {
            case .failure(let error):
                sink.deliver(.text(JobResultJSON.invalidSpec(error, line: lineNumber), outcome: "invalid_spec"))
                continue
            case .success(let value):
                decoded = value
            }
            guard control.enter() else {
                sink.deliver(.text(BatchLines.cancelled(id: decoded.id, line: lineNumber), outcome: "cancelled"))
                continue
            }
            let sent = decoded.spec.input.bytes?.count ?? 0
            let command = decoded.spec.command.displayText
            let sequence = lineNumber
            do {
                try runner.submit(decoded.spec) { [sink, control] result in
                    // The loop thread only hands the result over; the sink encodes and writes it.
                    sink.deliver(.result(result, id: decoded.id, line: sequence, command: command, sent: sent))
                    control.leave()
                }
                stats.submitted()
            } catch {
                // The runner was shut down (interrupted, or --fail-fast) between check and submit.
                sink.deliver(.text(BatchLines.cancelled(id: decoded.id, line: sequence), outcome: "cancelled"))
                control.leave()
            }
        }
    }

    static func cancelled(id: String, line: Int) -> String {
        var json = JSONWriter()
        json.add("id", id)
        json.add("line", line)
        json.add("outcome", "cancelled")
        json.add("exit_code", nil as Int?)
        json.add("signal", nil as String?)
        json.add("error", "not started: the batch was stopped")
        return json.text
    }
}

/// The reader, used by the one reading thread only.
private final class LineReaderBox: @unchecked Sendable {
    private let reader: LineReader
    init(_ reader: LineReader) { self.reader = reader }
    func next() -> [UInt8]? { reader.next() }
}

/// The batch's stop flag, the count of jobs submitted and not yet
/// answered, and the wake-up of the main thread.
final class BatchControl: Sendable {
    private struct State {
        var stopped = false
        var gateClosed = false
        var inputEnded = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    /// Entered per job submitted, left when its result is handed over.
    let outstanding = DispatchGroup()

    /// Sets the stop flag; true if this call set it.
    func stop() -> Bool {
        let first = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { wake.signal() }
        return first
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    func inputEnded() {
        state.withLock { $0.inputEnded = true }
        wake.signal()
    }

    var isInputEnded: Bool { state.withLock { $0.inputEnded } }

    func waitForInputEndOrStop() { wake.wait() }

    /// Counts a job about to be submitted, unless stopped.
    func enter() -> Bool {
        state.withLock { state in
            guard !state.stopped, !state.gateClosed else { return false }
            outstanding.enter()
            return true
        }
    }

    func leave() { outstanding.leave() }

    /// No job is submitted after this, so `outstanding` can be waited on.
    func closeGate() { state.withLock { $0.gateClosed = true } }
}
