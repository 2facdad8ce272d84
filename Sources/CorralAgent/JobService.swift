import Corral
import CorralFormat
import Foundation
import Logging

/// The agent's jobs: admission (journal first, then the runner), cancel,
/// reads, recovery of what a previous run left unfinished, and retention.
/// The HTTP layer is a thin skin over this.
final class JobService: Sendable {
    let configuration: AgentConfiguration
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
    /// Held for the agent's life: no second agent shares the data directory.
    private let dataLock: DataDirectoryLock
    private let writer: JournalWriter
    private let wake: AsyncStream<Void>.Continuation

    static let markerVariable = "CORRAL_AGENT_JOB"

    /// Locks the data directory, opens the journal, resolves what a
    /// previous run left unfinished, and starts the runner.
    init(configuration: AgentConfiguration, version: String, logger: Logger) throws(AgentError) {
        self.configuration = configuration
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
        live = LiveJobs(maxQueued: configuration.maxQueued, wakeWriter: { wake.yield() })
        metrics = AgentMetrics(version: version)
        let metrics = self.metrics
        writer = JournalWriter(journal: journal, live: live, wakes: wakes, interval: configuration.flushInterval,
                               logger: logger) { batch in
            for _ in batch.starts { metrics.jobStarted() }
            for final in batch.finals {
                metrics.jobFinished(state: final.state, duration: final.durationSeconds,
                                    overshoot: final.overshootSeconds, pipesForceClosed: final.pipesForceClosed)
            }
        }
    }

    /// Commits journal batches until `finish()`.
    func runWriter() async { await writer.run() }

    // MARK: Submit

    enum SubmitAnswer: Sendable {
        case created(JobRecord)
        case replayed(JobRecord)
    }

    func submit(body: String, idempotencyKey: String?) async throws(APIError) -> SubmitAnswer {
        var defaults = JobSpecJSON.Defaults()
        defaults.timeout = configuration.defaultTimeout
        defaults.outputLimit = .bytes(configuration.maxOutputBytes)
        let decoded: JobSpecJSON.Decoded
        switch JobSpecJSON.decode(body, defaultID: "", defaults: defaults) {
        case .success(let value): decoded = value
        case .failure(let error): throw APIError.badSpec(field: error.field, message: error.message)
        }
        var spec = decoded.spec
        try identityPolicy.check(user: spec.user, group: spec.group)
        switch spec.outputLimit {
        case .unlimited: spec.outputLimit = .bytes(configuration.maxOutputBytes)
        case .bytes(let count) where count > configuration.maxOutputBytes || count == 0:
            spec.outputLimit = .bytes(configuration.maxOutputBytes)
        case .bytes: break
        }
        do { try spec.validate() } catch {
            throw APIError.badSpec(field: nil, message: error.message)
        }
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 200 {
            throw APIError(.badRequest, "bad_request", "Idempotency-Key must be 1 to 200 bytes")
        }

        // A retried submit is answered from the journal, queue full or not.
        if let key = idempotencyKey, let earlier = try await read({ try await journal.job(idempotencyKey: key) }) {
            guard earlier.specJSON == body else {
                throw APIError(.conflict, "idempotency_conflict",
                               "Idempotency-Key was already used for job \(earlier.record.id) with a different spec")
            }
            return .replayed(earlier.record)
        }
        do { try live.reserveSlot() } catch {
            switch error {
            case .queueFull: throw APIError(.tooManyRequests, "queue_full", "the queue is full (\(configuration.maxQueued) jobs waiting); retry later")
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
            logger.error("journal write failed", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, "journal", "cannot journal the job: \(error)")
        }
        switch admission {
        case .existing(let record):
            live.releaseSlot()
            return .replayed(record)
        case .conflict(let record):
            live.releaseSlot()
            throw APIError(.conflict, "idempotency_conflict",
                           "Idempotency-Key was already used for job \(record.id) with a different spec")
        case .created(let record):
            start(record, spec: spec)
            return .created(record)
        }
    }

    private func start(_ record: JobRecord, spec original: JobSpec) {
        let id = record.id
        var spec = original
        spec.environment = spec.environment.setting(JobService.markerVariable, to: "\(instance)/\(id)")
        let limit: Int
        if case .bytes(let count) = spec.outputLimit { limit = count } else { limit = configuration.maxOutputBytes }
        live.add(id, outputLimit: limit)
        let live = self.live
        let timeout = spec.timeout
        do {
            let handle = try runner.submit(
                spec,
                onOutput: { live.output(id, $0) },
                onStart: { live.started(id, $0) },
                onCompletion: { live.finished(id, JobService.final(of: $0, id: id, timeout: timeout)) })
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

    static func final(of result: JobResult, id: String, timeout: Duration?) -> JournalBatch.Final {
        let (exitCode, signal) = JobResultJSON.leaderEnd(result)
        var overshoot: Double?
        if case .timedOut = result.outcome, let timeout, let spawned = result.timing.spawned {
            overshoot = ((result.timing.delivered - spawned) - timeout).seconds
        }
        return JournalBatch.Final(
            jobID: id, state: JobState(result.outcome), finishedAt: .now(),
            startedAt: result.timing.spawned == nil ? nil : result.timing.startedAt,
            exitCode: exitCode, signal: signal, durationSeconds: JobResultJSON.durationSeconds(result),
            resultJSON: JobResultJSON.encode(result, id: id), message: JobResultJSON.errorMessage(result.outcome),
            overshootSeconds: overshoot, pipesForceClosed: result.pipesForceClosed)
    }

    static func display(_ command: Command) -> String {
        switch command {
        case .shell(let text): return text
        case .executable(let name, let arguments):
            return ([name] + arguments).map { word in
                word.isEmpty || word.contains(where: { " \"'\\$`".contains($0) }) ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
            }.joined(separator: " ")
        }
    }

    // MARK: Cancel

    func cancel(_ id: String) async throws(APIError) -> JobRecord {
        guard let record = try await read({ try await journal.job(id) }) else { throw APIError.notFound(id) }
        switch live.cancel(id) {
        case .cancelling: return record
        case .notLive: throw APIError(.conflict, "already_final", "job \(id) has already finished (\(record.state.rawValue))")
        }
    }

    // MARK: Reads

    func job(_ id: String) async throws(APIError) -> JobRecord {
        guard let record = try await read({ try await journal.job(id) }) else { throw APIError.notFound(id) }
        return record
    }

    func read<T: Sendable>(_ body: () async throws -> T) async throws(APIError) -> T {
        do { return try await body() } catch {
            throw APIError(.internalServerError, "journal", "cannot read the journal: \(error)")
        }
    }

    // MARK: Shutdown

    /// Stops taking jobs, lets running ones finish for the grace, then
    /// stops the rest, and commits every result.
    func shutdown() async {
        live.stopAccepting()
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while live.counts.live > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let left = live.counts.live
        if left > 0 { logger.notice("stopping \(left) jobs still running after the shutdown grace") }
        await runner.shutdown()  // every result delivered
        wake.finish()
    }

    func endRun() {
        try? journal.endRun(runID)
    }

    // MARK: Retention

    func prune() async {
        let cutoff = WallClockTime(nanosecondsSince1970: WallClockTime.now().nanosecondsSince1970
            - Int64(configuration.keepFor.components.seconds) * 1_000_000_000)
        do {
            let pruned = try await journal.prune(keep: configuration.keepJobs, finishedBefore: cutoff)
            if pruned > 0 { logger.info("pruned \(pruned) old jobs") }
        } catch {
            logger.error("pruning failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Recovery

    /// Every job a previous run left `queued` or `running` gets the final
    /// state `lost`, with its journaled output and what was still running
    /// of it, which is killed first.
    static func recover(journal: Journal, instance: String, logger: Logger) throws(AgentError) -> Int {
        do {
            let unfinished = try journal.unfinished()
            guard !unfinished.isEmpty else { return 0 }
            let traces = unfinished.map { job in
                Reclaim.Trace(
                    id: job.corralID.map(JobID.init(rawValue:)),
                    marker: "\(markerVariable)=\(instance)/\(job.id)",
                    pid: job.pid, startTime: job.startTicks,
                    cgroup: job.cgroup ?? zip(job.runCgroupDirectory, job.corralID).map { $0 + "/" + $1 })
            }
            let killed = Reclaim.stop(traces)
            var batch = JournalBatch()
            for (job, processes) in zip(unfinished, killed) {
                let chunks = try journal.pool.read { db in
                    try journal.chunksSync(db, job.id)
                }
                var stdout: [UInt8] = [], stderr: [UInt8] = []
                for chunk in chunks {
                    if chunk.stream == "stderr" { stderr += chunk.bytes } else { stdout += chunk.bytes }
                }
                var reason = "the agent stopped while this job was \(job.state.rawValue)"
                reason += processes.isEmpty
                    ? "; none of its processes was still running"
                    : "; \(processes.count) of its processes were still running and were killed: "
                        + processes.map(\.description).joined(separator: ", ")
                batch.finals.append(JournalBatch.Final(
                    jobID: job.id, state: .lost, finishedAt: .now(), startedAt: job.startedAt, exitCode: nil, signal: nil,
                    durationSeconds: nil,
                    resultJSON: JobResultJSON.lost(id: job.id, reason: reason, stdout: stdout, stderr: stderr,
                                                   pid: job.pid, killed: processes, startedAt: job.startedAt),
                    message: reason))
                logger.notice("job \(job.id) lost: \(reason)")
            }
            try journal.applySync(batch)
            return unfinished.count
        } catch {
            throw AgentError("cannot recover the journal's unfinished jobs: \(error)")
        }
    }
}

private func zip(_ first: String?, _ second: String?) -> (String, String)? {
    guard let first, let second else { return nil }
    return (first, second)
}
