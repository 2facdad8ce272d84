import ArgumentParser
import Corral
import CorralFormat
import Dispatch
import Foundation
import Synchronization

/// `corral run`: one command with a deadline, like timeout(1) without the hang.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one command with a deadline; stop its whole process tree when it passes.",
        discussion: """
            The command runs in its own session and process group. On timeout (or Ctrl-C) the
            whole group gets the stop signal, then KILL after --kill-after; output pipes still
            held by escaped descendants are closed after --drain, so corral never hangs.

            Examples:
              corral run --timeout 2s -- examples/seed/sleep.sh
              corral run --timeout 1m --kill-after 5s --signal INT -- ./server --port 8080
              corral run --json --max-output 64KiB --shell 'make -j4 test 2>&1'

            Durations: 500ms, 30s, 5m, 1h30m, or seconds. Sizes: 65536, 64KiB, 1MiB, 10MB.
            Signals: TERM, SIGTERM, term or 15.
            Exit codes: the command's; 124 timed out; 125 corral's own error; 126 cannot
            execute; 127 not found; 128+N killed by signal N; 130/143/129/131 when corral
            itself got INT/TERM/HUP/QUIT.
            """)

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop the command after this long.", valueName: "duration"))
    var timeout: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Stop signal sent to the whole group.", valueName: "signal"))
    var signal: String = "TERM"
    @Option(name: .customLong("kill-after"), parsing: .unconditional, help: ArgumentHelp("Grace between the stop signal and KILL.", valueName: "duration"))
    var killAfter: String = "2s"
    @Option(parsing: .unconditional, help: ArgumentHelp("How long to wait for output after the command exits before closing its pipes.", valueName: "duration"))
    var drain: String = "1s"
    @Flag(help: "Run the single COMMAND argument as /bin/sh -c text.")
    var shell = false
    @Option(parsing: .unconditional, help: ArgumentHelp("Working directory.", valueName: "dir"))
    var cwd: String?
    @Option(name: .customLong("env"), help: ArgumentHelp("Set a variable (repeatable).", valueName: "K=V"))
    var environment: [String] = []
    @Option(name: .customLong("unset-env"), help: ArgumentHelp("Remove a variable (repeatable; applied after every --env, whatever the order).", valueName: "K"))
    var unsetEnvironment: [String] = []
    @Flag(name: .customLong("clear-env"), help: "Start from an empty environment (plus --env).")
    var clearEnvironment = false
    @Option(parsing: .unconditional, help: ArgumentHelp("Run as this user (needs root).", valueName: "name|uid"))
    var user: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Run with this group (needs root).", valueName: "name|gid"))
    var group: String?
    @Option(name: .customLong("max-output"), parsing: .unconditional, help: ArgumentHelp("With --json: bytes kept per stream, head and tail (0 = unlimited).", valueName: "size"))
    var maxOutput: String = "1MiB"
    @Flag(help: "Send the command's stderr into its stdout, in order.")
    var combine = false
    @Flag(name: .customLong("leave-running"), help: "Do not kill what the command leaves running when it exits.")
    var leaveRunning = false
    @Flag(help: "Capture the output and print one JSON result object at the end.")
    var json = false
    @Option(help: ContainmentOption.help)
    var containment: String = "auto"
    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments (after --).", valueName: "command"))
    var command: [String] = []

    func run() throws {
        // Passthrough capture takes every word after the options, -h and --help too.
        if let first = command.first, first == "-h" || first == "--help" { throw CleanExit.helpRequest(self) }
        let spec: JobSpec
        do { spec = try makeSpec() } catch { throw ValidationError(error.description) }
        if json, ProcessSetup.closedAtStart.contains(STDOUT_FILENO) {
            // Refused before the job runs: its result would have nowhere to go.
            FileOutput.standardError.say("corral: cannot write the result: standard output is closed")
            throw ExitCode(ExitCodes.corralError)
        }

        let forwarder = SignalForwarder()  // before the runner's thread exists
        var configuration = Runner.Configuration()
        configuration.containment = try ContainmentOption.parse(containment)
        configuration.reapOrphans = true  // corral owns this process: no other children to protect
        configuration.maxJobsInFlight = 1
        let runner = try Runner(configuration: configuration)
        let finished = DispatchSemaphore(value: 0)
        let outcome = ResultSlot()
        let handle = try runner.submit(spec, onCompletion: { result in
            outcome.set(result)
            finished.signal()
        })
        forwarder.onSignal { _ in handle.cancel() }
        finished.wait()
        shutdown(runner)

        let result = outcome.get()!
        if json {
            do {
                try FileOutput.standardOutput.writeLine(JobResultJSON.encode(result, id: result.id.rawValue))
            } catch where error.readerGone {
                throw ExitCode(128 + SIGPIPE)  // nobody reads: end like a filter would
            } catch {
                FileOutput.standardError.say("corral: cannot write the result to standard output: \(error)")
                throw ExitCode(ExitCodes.corralError)
            }
        } else if case .failedToStart(let failure) = result.outcome {
            FileOutput.standardError.say("corral: \(failure.message)")
        } else if case .lost(let reason) = result.outcome {
            FileOutput.standardError.say("corral: \(reason)")
        }
        if let received = forwarder.signal { throw ExitCode(128 + Int32(received)) }
        throw ExitCode(ExitCodes.code(for: result))
    }

    private func makeSpec() throws(CLIError) -> JobSpec {
        var words = command
        if words.first == "--" {
            words.removeFirst()
        } else if let first = words.first, first.hasPrefix("-"), first.count > 1 {
            throw CLIError("unknown option '\(first)' (put the command after --)")
        }
        guard let program = words.first else { throw CLIError("missing COMMAND (corral run [options] -- COMMAND [ARG...])") }
        var spec: JobSpec
        if shell {
            guard words.count == 1 else { throw CLIError("--shell takes the command as one argument (quote it)") }
            spec = JobSpec(.shell(program))
        } else {
            spec = JobSpec(.executable(program, arguments: Array(words.dropFirst())))
        }
        if let timeout {
            let limit = try duration(timeout, flag: "--timeout")
            guard limit > .zero else { throw CLIError("--timeout: must be more than 0 (leave it out for no timeout)") }
            spec.timeout = limit
        }
        spec.killGrace = try duration(killAfter, flag: "--kill-after")
        spec.drainTimeout = try duration(drain, flag: "--drain")
        guard let stopSignal = Signal(parsing: signal) else {
            throw CLIError("--signal: unknown signal '\(signal)' (expected TERM, SIGTERM, term or 15)")
        }
        spec.stopSignal = stopSignal
        var changes: [String: String?] = [:]
        for assignment in environment {
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw CLIError("--env: expected K=V, got '\(assignment)'")
            }
            let name = String(assignment[..<equals])
            try RunCommand.refuseOtherSpelling(of: name, in: changes, flag: "--env")
            changes[name] = String(assignment[assignment.index(after: equals)...])
        }
        for name in unsetEnvironment {
            guard Environment.isValidName(name) else {
                throw CLIError("--unset-env: invalid variable name \(String(reflecting: name))")
            }
            try RunCommand.refuseOtherSpelling(of: name, in: changes, flag: "--unset-env")
            changes[name] = .some(nil)
        }
        if clearEnvironment {
            spec.environment = .custom(changes.compactMapValues { $0 })
        } else if !changes.isEmpty {
            spec.environment = .inherit(updating: changes)
        }
        spec.workingDirectory = cwd
        if let user { spec.user = try IdentityText.parse(user, flag: "--user").map(UserIdentity.id) ?? .name(user) }
        if let group { spec.group = try IdentityText.parse(group, flag: "--group").map(GroupIdentity.id) ?? .name(group) }
        guard let limit = SizeText.parse(maxOutput) else {
            throw CLIError("--max-output: expected \(SizeText.accepted), got '\(maxOutput)'")
        }
        spec.outputLimit = limit == 0 ? .unlimited : .bytes(limit)
        // Without --json the job writes to corral's own stdout and stderr, as
        // timeout(1)'s child does: no byte passes through corral, so a reader
        // that stops reading holds up only the job (never its deadline), and
        // a reader that goes away gives the job its own EPIPE/SIGPIPE.
        if json {
            if combine { spec.output = .combined }
        } else {
            spec.output = combine ? .inheritCombined : .inherit
        }
        if leaveRunning { spec.lingering = .leaveRunning }
        spec.input = .inherit
        do { try spec.validate() } catch { throw CLIError(IdentityText.flagMessage(error.message)) }
        return spec
    }

    private func duration(_ text: String, flag: String) throws(CLIError) -> Duration {
        guard let value = DurationText.parse(text) else {
            throw CLIError("\(flag): expected \(DurationText.accepted), got '\(text)'")
        }
        return value
    }
}

extension RunCommand {
    /// Two spellings of one name to Swift (see `Environment.otherSpelling`)
    /// would set one variable, named as the first and valued as the last.
    static func refuseOtherSpelling(of name: String, in changes: [String: String?], flag: String) throws(CLIError) {
        guard let held = Environment.otherSpelling(of: name, in: changes) else { return }
        throw CLIError("\(flag): \(Environment.spelled(name)) and \(Environment.spelled(held)) are one name in Unicode "
            + "but different bytes; give one spelling")
    }
}

/// One result, handed from the loop thread to the waiting one.
final class ResultSlot: Sendable {
    private let slot = Mutex<JobResult?>(nil)
    func set(_ result: JobResult) { slot.withLock { $0 = result } }
    func get() -> JobResult? { slot.withLock { $0 } }
}

/// Shuts a runner down from synchronous code.
func shutdown(_ runner: Runner) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await runner.shutdown()
        done.signal()
    }
    done.wait()
}
