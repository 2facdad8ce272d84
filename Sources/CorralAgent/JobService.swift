import Corral
import CorralFormat
import Foundation
import Logging
import Synchronization

/// The agent's jobs: admission (journal first, then the runner), cancel,
/// reads, recovery of what a previous run left unfinished, and retention.
/// The HTTP layer is a thin skin over this.
final class JobService: Sendable {
    let configuration: AgentConfiguration
    let version: String
    let journal: Journal
    let live: LiveJobs
    let metrics: AgentMetrics
    let runner: Runner
    let runID: Int64
    /// Each job carries `CORRAL_AGENT_JOB=<instance>/<id>`, so a restarted
    /// agent finds its processes even if it died before journaling the start.
    let instance: String
    let logger: Logger
    let identityPolicy: IdentityPolicy
    /// Whether the journal takes writes and is still the file opened.
    let health = JournalHealth()
    /// Held for the agent's life: no second agent shares the data directory.
    private let dataLock: DataDirectoryLock
    private let writer: JournalWriter
    private let wake: AsyncStream<Void>.Continuation
    /// What the shutdown could not record, for the exit status.
    private let shutdownProblems = Mutex<String?>(nil)
    /// Set once a stop or a drain is asked for: until when running and
    /// queued jobs may go on, and whether it is a drain.
    private let stopping = Mutex<(deadline: ContinuousClock.Instant, draining: Bool)?>(nil)
    /// A SIGTERM/SIGINT came (also one that cut a drain short): for the
    /// message of the jobs it stops.
    private let terminated = Mutex(false)

    /// Results are committed this long at most after the runner stopped
    /// (retrying a failing journal), so shutdown ends even when the
    /// journal cannot be written.
    static let drainLimit: Duration = .seconds(5)

    static let markerVariable = "CORRAL_AGENT_JOB"

    /// Locks the data directory, opens the journal, resolves what a
    /// previous run left unfinished, and starts the runner.
    init(configuration: AgentConfiguration, version: String, logger: Logger) throws(AgentError) {
        self.configuration = configuration
        self.version = version
        self.logger = logger
        identityPolicy = IdentityPolicy(allowedUsers: configuration.allowedUsers, allowedGroups: configuration.allowedGroups)
        // Before the journal is opened or recovery kills anything: a second
        // agent would otherwise take the first one's running jobs for lost.
        dataLock = try DataDirectoryLock(directory: configuration.dataDirectory)
        journal = try Journal(directory: configuration.dataDirectory)
        do {
            instance = try journal.instanceName()
        } catch {
            throw AgentError("cannot read the journal: \(error)")
        }
        let recovered = try JobService.recover(journal: journal, instance: instance, logger: logger)
        if recovered > 0 { logger.notice("resolved \(recovered) jobs of a previous run as lost") }

        var runnerConfiguration = Runner.Configuration()
        runnerConfiguration.maxJobsInFlight = configuration.maxJobs
        runnerConfiguration.reapOrphans = true
        runnerConfiguration.containment = configuration.containment
        do {
            runner = try Runner(configuration: runnerConfiguration)
        } catch {
            throw AgentError("cannot start the job runner: \(error)")
        }
        do {
            runID = try journal.beginRun(pid: getpid(), cgroupDirectory: runner.containment.directory)
        } catch {
            throw AgentError("cannot write the journal: \(error)")
        }
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        live = LiveJobs(maxJobs: configuration.maxJobs, maxQueued: configuration.maxQueued, wakeWriter: { wake.yield() })
        metrics = AgentMetrics(version: version)
        let metrics = self.metrics
        // On the writer's task, after the commit: never on the loop thread.
        writer = JournalWriter(journal: journal, live: live, health: health, wakes: wakes,
                               interval: configuration.flushInterval, logger: logger) { batch in
            for start in batch.starts {
                metrics.jobStarted()
                logger.info("job started", metadata: ["job": "\(start.jobID)", "pid": .stringConvertible(Int(start.pid))])
            }
            for final in batch.finals {
                metrics.jobFinished(state: final.state, duration: final.durationSeconds,
                                    overshoot: final.overshootSeconds, pipesForceClosed: final.pipesForceClosed)
                JobService.logEnd(final, logger: logger)
            }
        }
    }

    /// Commits journal batches until the shutdown stops it.
    func runWriter() async { await writer.run() }

    /// Notices a journal file deleted or replaced under the agent; while
    /// so, no jobs are taken (their results would go to a file nobody reads).
    func checkJournalFile() {
        guard let identity = journal.identity else { return }
        let problem = identity.problem(at: journal.path)
        guard health.fileChecked(problem) else { return }
        if let problem {
            logger.error("journal unavailable: \(problem); refusing new jobs until it is back")
        } else {
            logger.notice("the journal file \(journal.path) is back; taking jobs again")
        }
    }

    // MARK: Submit

    enum SubmitAnswer: Sendable {
        case created(JobRecord)
        case replayed(JobRecord)
    }

    func submit(body bytes: [UInt8], idempotencyKey: String?) async throws(APIError) -> SubmitAnswer {
        var defaults = JobSpecJSON.Defaults()
        defaults.timeout = configuration.defaultTimeout
        defaults.outputLimit = .bytes(configuration.maxOutputBytes)
        let decoded: JobSpecJSON.Decoded
        // Strict: invalid UTF-8 and duplicate keys are refused (naming the
        // field), never repaired into a different command.
        switch JobSpecJSON.decode(bytes: bytes, defaultID: "", defaults: defaults) {
        case .success(let value): decoded = value
        case .failure(let error):
            let (field, message) = SpecErrorField.error(for: bytes, error)
            throw APIError.badSpec(field: field, message: message)
        }
        let body = String(decoding: bytes, as: UTF8.self)  // valid: the parser checked
        var spec = decoded.spec
        try identityPolicy.check(user: spec.user, group: spec.group)
        switch spec.outputLimit.bytes {
        case nil, 0?: spec.outputLimit = .bytes(configuration.maxOutputBytes)
        case let count? where count > configuration.maxOutputBytes:
            spec.outputLimit = .bytes(configuration.maxOutputBytes)
        default: break
        }
        do { try spec.validate() } catch {
            throw APIError.badSpec(field: nil, message: error.message)
        }

        // A retried submit is answered from the journal, queue full or not.
        if let key = idempotencyKey, let earlier = try await read({ try await journal.summary(idempotencyKey: key) }) {
            guard earlier.specJSON == body else {
                throw APIError(.conflict, "idempotency_conflict",
                               "Idempotency-Key was already used for job \(earlier.record.id) with a different spec")
            }
            // Read whole as `job` reads it (with output not yet committed).
            return .replayed(try await job(earlier.record.id))
        }
        if let problem = health.problem {
            throw APIError(.serviceUnavailable, "journal_unavailable", "the agent takes no jobs now: \(problem)")
        }
        do { try live.reserveSlot() } catch {
            switch error {
            case .queueFull: throw APIError(.tooManyRequests, "queue_full", "the queue is full: no run slot is free and \(configuration.maxQueued) jobs already wait for one (--max-queued); retry later")
            case .shuttingDown where isDraining:
                throw APIError(.serviceUnavailable, "draining",
                               "the agent is draining: it finishes the jobs it has, then exits, and takes no new jobs; submit them to another agent or after its restart")
            case .shuttingDown: throw APIError(.serviceUnavailable, "shutting_down", "the agent is shutting down and takes no new jobs")
            }
        }
        let admission: Journal.Admission
        do {
            admission = try await journal.admit(
                specJSON: body, name: decoded.id.isEmpty ? nil : decoded.id, command: JobService.display(spec.command),
                idempotencyKey: idempotencyKey, timeout: spec.timeout, runID: runID)
        } catch {
            live.releaseSlot()
            let reason = JournalHealth.reason(error)
            if health.writeFailed(reason) {
                logger.error("journal unavailable: \(reason); refusing new jobs", metadata: ["error": "\(error)"])
            }
            wake.yield()  // the writer retries, and says when it works again
            throw APIError(.serviceUnavailable, "journal_unavailable", "the agent takes no jobs now: \(reason)")
        }
        switch admission {
        case .existing(let record):
            live.releaseSlot()
            return .replayed(try await job(record.id))
        case .conflict(let record):
            live.releaseSlot()
            throw APIError(.conflict, "idempotency_conflict",
                           "Idempotency-Key was already used for job \(record.id) with a different spec")
        case .created(let record):
            logger.debug("job submitted", metadata: ["job": "\(record.id)", "command": "\(record.command)"])
            start(record, spec: spec)
            return .created(record)
        }
    }

    private func start(_ record: JobRecord, spec original: JobSpec) {
        let id = record.id
        var spec = original
        spec.environment = spec.environment.setting(JobService.markerVariable, to: "\(instance)/\(id)")
        let limit = spec.outputLimit.bytes ?? configuration.maxOutputBytes
        live.add(id, outputLimit: limit)
        let live = self.live
        let timeout = spec.timeout
        do {
            let handle = try runner.submit(
                spec,
                onOutput: { live.output(id, $0) },
                onStart: { live.started(id, $0) },
                onCompletion: { [weak self] result in
                    let journaled = live.journaledBytes(id)
                    var reason: String?
                    if case .cancelled = result.outcome { reason = self?.cancelReason(id) }
                    live.finished(id, JobService.final(of: result, id: id, timeout: timeout, journaled: journaled,
                                                       cancelReason: reason))
                })
            live.attach(handle, to: id)
        } catch {
            let now = WallClockTime.now()
            let message = "not started: \(error)"
            live.finished(id, JournalBatch.Final(
                jobID: id, state: .cancelled, finishedAt: now, startedAt: nil, exitCode: nil, signal: nil,
                durationSeconds: nil, resultJSON: "{\"id\":\(JSONWriter.quote(id)),\"outcome\":\"cancelled\",\"error\":\(JSONWriter.quote(message))}",
                message: message))
        }
    }

    /// The final record of a job; its output is stored once: `journaled`
    /// says how many bytes of each stream the journal's chunks hold.
    static func final(of result: JobResult, id: String, timeout: Duration?, journaled: [String: Int],
                      cancelReason: String? = nil) -> JournalBatch.Final {
        let (exitCode, signal) = JobResultJSON.leaderEnd(result)
        let outputs = [
            ResultOutput(stream: "stdout", captured: result.stdout,
                         journaled: journaled["stdout", default: 0] + journaled["combined", default: 0]),
            ResultOutput(stream: "stderr", captured: result.stderr, journaled: journaled["stderr", default: 0]),
        ]
        var stored = result
        stored.stdout = CapturedOutput(bytes: [], droppedBytes: result.stdout.droppedBytes)
        stored.stderr = CapturedOutput(bytes: [], droppedBytes: result.stderr.droppedBytes)
        var overshoot: Double?
        if case .timedOut = result.outcome, let timeout, let spawned = result.timing.spawned {
            overshoot = ((result.timing.delivered - spawned) - timeout).seconds
        }
        return JournalBatch.Final(
            jobID: id, state: JobState(result.outcome), finishedAt: .now(),
            startedAt: result.timing.spawned == nil ? nil : result.timing.startedAt,
            exitCode: exitCode, signal: signal, durationSeconds: JobResultJSON.durationSeconds(result),
            resultJSON: JobResultJSON.encode(stored, id: id), message: JobResultJSON.errorMessage(result.outcome) ?? cancelReason,
            outputs: outputs, overshootSeconds: overshoot, pipesForceClosed: result.pipesForceClosed)
    }

    static func display(_ command: Command) -> String {
        if let text = command.shellText { return text }
        return command.argv.map { word in
            word.isEmpty || word.contains(where: { " \"'\\$`".contains($0) }) ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
        }.joined(separator: " ")
    }

    // MARK: Log

    /// This machine's name (gethostname), for the start-up line and /healthz.
    var hostName: String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "?" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The start-up line: what this agent is and how it is set up.
    func logStart(listening address: String) {
        let host = hostName
        let containment = runner.containment
        var metadata: Logger.Metadata = [
            "version": "\(version)",
            "host": "\(host)",
            "pid": .stringConvertible(Int(getpid())),
            "listen": "\(address)",
            "data_dir": "\(configuration.dataDirectory)",
            "containment": "\(containment.tier)",
            "max_jobs": .stringConvertible(configuration.maxJobs),
            "max_queued": .stringConvertible(configuration.maxQueued),
            "max_output_bytes": .stringConvertible(configuration.maxOutputBytes),
            "default_timeout_s": .stringConvertible(configuration.defaultTimeout.map { Int($0.components.seconds) } ?? 0),
            "token": "\(configuration.token == nil ? "none" : "required")",
        ]
        if let note = containment.note { metadata["containment_note"] = "\(note)" }
        if let directory = containment.directory { metadata["cgroup"] = "\(directory)" }
        logger.info("corral agent started", metadata: metadata)
    }

    /// One line per finished job: outcome, exit code or signal, duration,
    /// and by how much a timed-out job's result came after its deadline.
    static func logEnd(_ final: JournalBatch.Final, logger: Logger) {
        var metadata: Logger.Metadata = ["job": "\(final.jobID)", "outcome": "\(final.state.rawValue)"]
        if let code = final.exitCode { metadata["exit_code"] = .stringConvertible(Int(code)) }
        if let signal = final.signal { metadata["signal"] = "\(signal)" }
        if let duration = final.durationSeconds { metadata["duration_s"] = .stringConvertible(duration) }
        if let overshoot = final.overshootSeconds { metadata["overshoot_s"] = .stringConvertible(overshoot) }
        if final.pipesForceClosed { metadata["pipes_force_closed"] = .stringConvertible(true) }
        if let message = final.message { metadata["message"] = "\(message)" }
        logger.info("job ended", metadata: metadata)
    }

    // MARK: Cancel

    /// Who cancelled a job, for its `message`: a client, or the agent's
    /// own shutdown or drain (bounded by its grace).
    func cancelReason(_ id: String) -> String {
        if live.cancelRequested(id) { return "cancelled by a client (DELETE /v1/jobs/\(id))" }
        if terminated.withLock({ $0 }) { return "stopped by the agent's shutdown: --shutdown-grace passed before the job ended" }
        if stopping.withLock({ $0 != nil }) { return "stopped by the agent's drain: --drain-timeout passed before the job ended" }
        return "cancelled"
    }

    func cancel(_ id: String) async throws(APIError) -> JobRecord {
        guard let record = try await read({ try await journal.summary(id) }) else { throw APIError.notFound(id) }
        switch live.cancel(id) {
        case .cancelling: return record
        case .notLive: throw APIError(.conflict, "already_final", "job \(id) has already finished (\(record.state.rawValue))")
        }
    }

    // MARK: Reads

    func job(_ id: String) async throws(APIError) -> JobRecord {
        // Taken first: chunks stay pending until committed, so nothing kept
        // by then falls between; a result is committed after its chunks
        // (`JournalBatch.parts`), so a read that finds it final finds them
        // all committed too.
        let pending = live.pendingOutput(id)
        guard var record = try await read({ try await journal.job(id, pending: pending) }) else { throw APIError.notFound(id) }
        if !record.state.isFinal { record.liveOutputLimit = live.outputLimit(id) }
        return record
    }

    /// One job without its result (for its state).
    func summary(_ id: String) async throws(APIError) -> JobRecord {
        guard let record = try await read({ try await journal.summary(id) }) else { throw APIError.notFound(id) }
        return record
    }

    /// A journal read; a failure is logged with its detail and answered
    /// 500 with a plain message (no SQL in an API answer).
    func read<T: Sendable>(_ body: () async throws -> T) async throws(APIError) -> T {
        do { return try await body() } catch {
            logger.error("journal read failed", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, "journal_read_failed", "cannot read the journal; the agent's log has the detail")
        }
    }

    // MARK: Shutdown

    /// SIGTERM/SIGINT (`draining` false) or a drain (SIGUSR1): stops taking
    /// jobs at once and sets how long the running and queued ones may go
    /// on: `shutdownGrace` from now, or `drainTimeout` for a drain. A later
    /// request can only bring that time closer (SIGTERM cuts a drain short).
    func requestStop(draining: Bool) {
        let bound = draining ? configuration.drainTimeout : configuration.shutdownGrace
        let deadline = ContinuousClock.now + bound
        if !draining { terminated.withLock { $0 = true } }
        stopping.withLock { current in
            if let current, current.deadline <= deadline {
                return
            }
            current = (deadline, current?.draining ?? draining)
        }
        live.stopAccepting()
    }

    /// Whether a stop or a drain was asked for.
    var isStopping: Bool { stopping.withLock { $0 != nil } }

    /// Whether the agent is draining (it says so to clients refused).
    var isDraining: Bool { stopping.withLock { $0?.draining ?? false } }

    /// Stops taking jobs, lets running ones finish for the grace, then
    /// stops the rest, and commits every result.
    ///
    /// Bounded even when the journal cannot be written: the grace, the
    /// runner's stop sequence, then `drainLimit` to commit what is left;
    /// what could not be committed is logged and kept for `shutdownProblem`.
    func shutdown(writerTask: Task<Void, Never>) async {
        if stopping.withLock({ $0 == nil }) { requestStop(draining: false) }
        let draining = isDraining
        if draining { logger.notice("draining: \(live.unfinished) jobs to finish, within \(configuration.drainTimeout.components.seconds) s") }
        while live.unfinished > 0, let deadline = stopping.withLock({ $0?.deadline }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = live.unfinished
        if left > 0 {
            logger.notice("stopping \(left) jobs still running after the \(draining ? "drain's bound" : "shutdown grace")")
        } else if draining {
            logger.notice("drained: every job finished")
        }
        await runner.shutdown()  // every result delivered
        writer.stop(finishing: wake)
        await writerTask.value
        let unrecorded = await writer.drain(until: ContinuousClock.now + JobService.drainLimit)
        live.endStreams()
        var problems: [String] = []
        if let unrecorded {
            problems.append("not recorded in the journal (\(health.problem ?? "it cannot be written")): \(unrecorded)")
        }
        if let file = health.fileProblem {
            problems.append("\(file); what was recorded since is not in the journal file")
        }
        guard !problems.isEmpty else { return }
        let text = problems.joined(separator: "; ")
        logger.critical("shutdown: \(text)")
        shutdownProblems.withLock { $0 = text }
    }

    /// What the shutdown could not record, if anything.
    var shutdownProblem: String? { shutdownProblems.withLock { $0 } }

    func endRun() {
        try? journal.endRun(runID)
    }
}
