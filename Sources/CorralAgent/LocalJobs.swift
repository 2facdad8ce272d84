import CorralFormat
import NIOCore

/// What fleet mode (`corral agent --server-db`, in CorralFleet) sees of
/// the agent's own jobs: a fleet task is submitted here like any API job,
/// journaled first under its attempt id (as the Idempotency-Key), so the
/// local API, page and journal show it, and a restarted agent finds what
/// became of an attempt in its journal.
package struct LocalJobs: Sendable {
    let service: JobService

    /// The journal's own name (made once with it): the same across
    /// restarts of this agent, another for an agent with another journal.
    package var journalInstance: String { service.instance }

    /// Jobs the runner runs at once (`--max-jobs`).
    package var maxJobs: Int { service.configuration.maxJobs }
    /// Jobs taken and not yet final (running or waiting for a slot).
    package var unfinished: Int { service.live.unfinished }
    /// Whether a submit would be taken now: not stopping or draining, and
    /// the journal writable.
    package var takesJobs: Bool { !service.isStopping && service.health.problem == nil }

    /// The journal's key for a fleet attempt.
    package static func key(attempt: String) -> String { "fleet:" + attempt }

    package enum Submitted: Sendable {
        /// Journaled (or found journaled) under the attempt: its local job id.
        case accepted(String)
        /// Refused before it was journaled (the message says why): it never ran.
        case refused(String)
    }

    /// Submits a spec (one line of `corral batch`) under a fleet attempt.
    package func submit(spec: [UInt8], attempt: String) async -> Submitted {
        do {
            switch try await service.submit(body: spec, idempotencyKey: LocalJobs.key(attempt: attempt)) {
            case .created(let record), .replayed(let record): return .accepted(record.id)
            }
        } catch {
            return .refused(error.message)
        }
    }

    /// A final job as the fleet reports it.
    package struct Final: Sendable {
        package var id: String
        /// The result's `outcome`: exited, signaled, timed_out, cancelled, failed_to_start or lost.
        package var outcome: String
        package var exitCode: Int32?
        package var signal: String?
        package var durationSeconds: Double?
        package var message: String?
        /// The result object, its output put back in (JobResultJSON's schema).
        package var resultJSON: String
    }

    package enum Known: Sendable {
        /// No job was journaled under this attempt.
        case unknown
        case unfinished(id: String)
        case final(Final)
    }

    /// What the journal holds for an attempt (committed state only). A
    /// result is committed after the job's output chunks
    /// (`JournalBatch.parts`), so a final job's result and journaled chunks
    /// are whole.
    package func lookup(attempt: String) async throws -> Known {
        guard let (summary, _) = try await service.journal.summary(idempotencyKey: LocalJobs.key(attempt: attempt)) else {
            return .unknown
        }
        guard summary.state.isFinal, let record = try await service.journal.job(summary.id) else {
            return .unfinished(id: summary.id)
        }
        var buffer = ByteBuffer()
        ResultText.write(record.resultJSON ?? "null", output: record.output, into: &buffer)
        return .final(Final(id: record.id, outcome: record.state.rawValue, exitCode: record.exitCode, signal: record.signal,
                            durationSeconds: record.durationSeconds, message: record.message,
                            resultJSON: String(buffer: buffer)))
    }

    /// Asks a live job to stop (the runner's stop sequence on its group);
    /// a job already final is left as it is.
    package func cancel(id: String) {
        _ = service.live.cancel(id)
    }
}

extension LocalJobs {
    /// A journaled chunk of a job's output.
    package struct Chunk: Sendable {
        package var seq: Int
        /// stdout, stderr, or combined (both, in the order read).
        package var stream: String
        package var bytes: [UInt8]
    }

    /// The job's journaled output chunks after `seq`, in order, at most `limit`.
    package func chunks(id: String, after seq: Int, limit: Int) async throws -> [Chunk] {
        try await service.journal.chunks(of: id, after: seq, limit: limit).map {
            Chunk(seq: $0.seq, stream: $0.stream, bytes: $0.bytes)
        }
    }
}
