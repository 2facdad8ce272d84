import Corral
import CorralFormat
import Foundation
import Logging

/// What a previous run left unfinished, and retention of finished jobs.
extension JobService {
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
                let journaled = try journal.journaledBytes(of: job.id)
                var reason = "the agent stopped while this job was \(job.state.rawValue)"
                reason += processes.isEmpty
                    ? "; none of its processes was still running"
                    : "; \(processes.count) of its processes were still running and were killed: "
                        + processes.map(\.description).joined(separator: ", ")
                batch.finals.append(JournalBatch.Final(
                    jobID: job.id, state: .lost, finishedAt: .now(), startedAt: job.startedAt, exitCode: nil, signal: nil,
                    durationSeconds: nil,
                    resultJSON: JobResultJSON.lost(id: job.id, reason: reason, stdout: [], stderr: [],
                                                   pid: job.pid, killed: processes, startedAt: job.startedAt),
                    message: reason,
                    outputs: [
                        ResultOutput(stream: "stdout", head: journaled["stdout", default: 0] + journaled["combined", default: 0], tail: []),
                        ResultOutput(stream: "stderr", head: journaled["stderr", default: 0], tail: []),
                    ]))
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
