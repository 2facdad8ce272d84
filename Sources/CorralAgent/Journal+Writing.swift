import Corral
import Foundation
import GRDB

extension Journal {
    /// One part of a batch from the writer, in one transaction.
    func apply(_ batch: JournalBatch) async throws {
        try await pool.write { db in try Journal.write(batch, in: db) }
    }

    func applySync(_ batch: JournalBatch) throws {
        try pool.write { db in try Journal.write(batch, in: db) }
    }

    /// A tiny write, to learn whether the journal takes writes again when
    /// nothing else is waiting to be written.
    func probe() async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_probe_ms', ?)",
                           arguments: [String(WallClockTime.now().milliseconds)])
        }
    }

    private static func write(_ batch: JournalBatch, in db: Database) throws {
        for chunk in batch.chunks {
            try db.execute(sql: "INSERT OR IGNORE INTO output (job_id, seq, stream, data) VALUES (?, ?, ?, ?)",
                           arguments: [chunk.jobID, chunk.seq, chunk.stream, Data(chunk.bytes)])
        }
        for start in batch.starts {
            try db.execute(sql: """
                UPDATE jobs SET state = 'running', corral_id = ?, pid = ?, start_ticks = ?, cgroup = ?, started_ms = ?
                WHERE id = ? AND state = 'queued'
                """, arguments: [start.corralID, start.pid, start.startTicks.map { Int64($0) }, start.cgroup,
                                 start.startedAt.milliseconds, start.jobID])
        }
        for final in batch.finals {
            try db.execute(sql: """
                UPDATE jobs SET state = ?, finished_ms = ?, exit_code = ?, signal = ?, duration_s = ?,
                    result_json = ?, result_form = 2, message = ?, started_ms = COALESCE(started_ms, ?)
                WHERE id = ?
                """, arguments: [final.state.rawValue, final.finishedAt.milliseconds, final.exitCode, final.signal,
                                 final.durationSeconds, final.resultJSON, final.message,
                                 final.startedAt?.milliseconds, final.jobID])
            try db.execute(sql: "DELETE FROM result_output WHERE job_id = ?", arguments: [final.jobID])
            for output in final.outputs {
                try db.execute(sql: "INSERT INTO result_output (job_id, stream, head, tail) VALUES (?, ?, ?, ?)",
                               arguments: [final.jobID, output.stream, output.head, Data(output.tail)])
            }
        }
    }
}
