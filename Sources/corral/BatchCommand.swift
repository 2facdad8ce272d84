import ArgumentParser
import Corral
import CorralFormat
import Dispatch
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
    @Option(name: [.customShort("j"), .customLong("jobs")], help: ArgumentHelp("Jobs in flight at once.", valueName: "n"))
    var jobs: Int = 64
    @Option(help: ArgumentHelp("Timeout for specs that give none.", valueName: "duration"))
    var timeout: String?
    @Option(help: ArgumentHelp("Write result lines here instead of standard output.", valueName: "file"))
    var output: String?
    @Option(help: ArgumentHelp("Also write GNU parallel's joblog here.", valueName: "file"))
    var joblog: String?
    @Option(name: .customLong("max-output"), help: ArgumentHelp("Bytes kept per stream for specs that give none (default 1MiB, 0 = unlimited).", valueName: "size"))
    var maxOutput: String?
    @Flag(name: .customLong("fail-fast"), help: "Stop at the first job that does not exit 0; the rest are cancelled.")
    var failFast = false
    @Flag(help: "No progress line and no summary.")
    var quiet = false
    @Flag(help: "Show the progress line even when stderr is not a terminal.")
    var progress = false
    @Option(help: ContainmentOption.help)
    var containment: String = "auto"

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs: expected a number of jobs of at least 1, got \(jobs)") }
        if let timeout, DurationText.parse(timeout) == nil {
            throw ValidationError("--timeout: expected \(DurationText.accepted), got '\(timeout)'")
        }
        if let maxOutput, SizeText.parse(maxOutput) == nil {
            throw ValidationError("--max-output: expected \(SizeText.accepted), got '\(maxOutput)'")
        }
    }

    func run() throws {
        var defaults = JobSpecJSON.Defaults()
        defaults.timeout = timeout.flatMap(DurationText.parse)
        if let bytes = maxOutput.flatMap(SizeText.parse) { defaults.outputLimit = bytes == 0 ? .unlimited : .bytes(bytes) }

        let reader: LineReader
        let results: FileOutput
        let log: JobLog?
        do {
            reader = try LineReader(path: input)
            results = try output.map(FileOutput.create) ?? .standardOutput
            log = try joblog.map { JobLog(output: try FileOutput.create($0)) }
        } catch let error as CLIError {
            FileOutput.standardError.writeLine("corral: \(error)")
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
        let stopping = StopFlag()
        let stop: @Sendable () -> Void = {
            guard stopping.set() else { return }
            // Shutdown cancels what is queued and stops what runs; each still gets its result.
            Task { await runner.shutdown() }
        }
        forwarder.onSignal { _ in stop() }

        // At most 2 × jobs submitted and unanswered: input is read as it is needed.
        let window = DispatchSemaphore(value: jobs * 2)
        let outstanding = DispatchGroup()
        let failFast = self.failFast
        var lineNumber = 0
        while let line = reader.next() {
            lineNumber += 1
            if line.allSatisfy(\.isWhitespace) { continue }
            let decoded: JobSpecJSON.Decoded
            switch JobSpecJSON.decode(line, defaultID: String(lineNumber), defaults: defaults) {
            case .failure(let error):
                results.writeLine(JobResultJSON.invalidSpec(error, line: lineNumber))
                stats.record(outcome: "invalid_spec", success: false, duration: nil, ran: false)
                if failFast { stop() }
                continue
            case .success(let value):
                decoded = value
            }
            if stopping.isSet {
                answerCancelled(id: decoded.id, results: results, stats: stats)
                continue
            }
            window.wait()
            outstanding.enter()
            let sequence = lineNumber
            let sent: Int = if case .bytes(let bytes) = decoded.spec.input { bytes.count } else { 0 }
            let command = decoded.spec.command.displayText
            do {
                try runner.submit(decoded.spec) { result in
                    results.writeLine(JobResultJSON.encode(result, id: decoded.id))
                    log?.record(sequence: sequence, command: command, sent: sent, result: result)
                    let failed = stats.record(outcome: JobResultJSON.outcomeName(result.outcome),
                                              success: result.outcome == .exited(0),
                                              duration: result.timing.duration.seconds, ran: true)
                    if failed, failFast { stop() }
                    window.signal()
                    outstanding.leave()
                }
                stats.submitted()
            } catch {
                // The runner was shut down (interrupted, or --fail-fast) between check and submit.
                answerCancelled(id: decoded.id, results: results, stats: stats)
                window.signal()
                outstanding.leave()
            }
        }
        outstanding.wait()
        shutdown(runner)
        if showProgress { stats.drawProgress(force: true); FileOutput.standardError.write("\n") }
        if !quiet { FileOutput.standardError.writeLine(stats.summary()) }
        if let received = forwarder.signal { throw ExitCode(128 + Int32(received)) }
        throw ExitCode(stats.anyFailed ? 1 : 0)
    }

    private func answerCancelled(id: String, results: FileOutput, stats: BatchStats) {
        var json = JSONWriter()
        json.add("id", id)
        json.add("outcome", "cancelled")
        json.add("exit_code", nil as Int?)
        json.add("signal", nil as String?)
        json.add("error", "not started: the batch was stopped")
        results.writeLine(json.text)
        stats.record(outcome: "cancelled", success: false, duration: nil, ran: false)
    }
}

/// Set once, read from any thread.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    /// Sets the flag; true if this call set it.
    func set() -> Bool { flag.withLock { was in defer { was = true }; return !was } }
    var isSet: Bool { flag.withLock { $0 } }
}
