import Corral
import Foundation
import GRDB

/// The agent's SQLite journal (WAL mode) in its data directory: every job
/// from before it is spawned to its result, its output as it arrives, and
/// the agent runs that started them.
final class Journal: Sendable {
    let pool: DatabasePool
    let path: String
    /// The file as opened, to notice it deleted or replaced.
    let identity: JournalFileIdentity?

    init(directory: String) throws(AgentError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AgentError("cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        path = (directory as NSString).appendingPathComponent("journal.sqlite")
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // WAL with NORMAL sync: a commit survives a crash of the agent
            // (the case that matters here); only a power loss may drop the
            // last transactions.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // After a checkpoint the WAL shrinks back to this, so space it
            // took in a burst (or while the disk was full) is given back.
            try db.execute(sql: "PRAGMA journal_size_limit = 4194304")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Journal.migrator.migrate(pool)
        } catch {
            throw AgentError("cannot open the journal \(path): \(error)")
        }
        identity = JournalFileIdentity(path: path)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    pid INTEGER NOT NULL,
                    started_ms INTEGER NOT NULL,
                    ended_ms INTEGER,
                    cgroup_dir TEXT
                );
                CREATE TABLE jobs (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    idempotency_key TEXT UNIQUE,
                    spec_json TEXT NOT NULL,
                    name TEXT,
                    command TEXT NOT NULL,
                    state TEXT NOT NULL,
                    run_id INTEGER NOT NULL,
                    corral_id TEXT,
                    pid INTEGER,
                    start_ticks INTEGER,
                    cgroup TEXT,
                    timeout_ms INTEGER,
                    submitted_ms INTEGER NOT NULL,
                    started_ms INTEGER,
                    finished_ms INTEGER,
                    exit_code INTEGER,
                    signal TEXT,
                    duration_s REAL,
                    result_json TEXT,
                    message TEXT
                );
                CREATE INDEX jobs_by_state ON jobs(state, seq);
                CREATE TABLE output (
                    job_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    stream TEXT NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (job_id, seq)
                ) WITHOUT ROWID;
                """)
        }
        // v2: a result's output is stored once. Results written before
        // keep their output inline (`result_form` 1) and read as before;
        // new ones (`result_form` 2) have empty `stdout`/`stderr` in
        // `result_json`, and `result_output` says where the bytes are.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN result_form INTEGER NOT NULL DEFAULT 1;
                CREATE TABLE result_output (
                    job_id TEXT NOT NULL,
                    stream TEXT NOT NULL,
                    head INTEGER NOT NULL,
                    tail BLOB NOT NULL,
                    PRIMARY KEY (job_id, stream)
                );
                """)
        }
        return migrator
    }

    // MARK: Runs

    /// This agent instance's name, kept across restarts: it makes the
    /// marker variable each job carries unique to this data directory.
    func instanceName() throws -> String {
        try pool.write { db in
            if let name = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'instance'") { return name }
            let name = String(UInt64.random(in: 0..<(1 << 48)), radix: 36)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('instance', ?)", arguments: [name])
            return name
        }
    }

    func beginRun(pid: Int32, cgroupDirectory: String?) throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO runs (pid, started_ms, cgroup_dir) VALUES (?, ?, ?)",
                           arguments: [pid, WallClockTime.now().milliseconds, cgroupDirectory])
            return db.lastInsertedRowID
        }
    }

    func endRun(_ id: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE runs SET ended_ms = ? WHERE id = ?", arguments: [WallClockTime.now().milliseconds, id])
        }
    }

    // MARK: Admission

    enum Admission: Sendable {
        case created(JobRecord)
        /// The same `Idempotency-Key` with the same spec: the job it made
        /// (its summary; `job(_:pending:)` reads it whole).
        case existing(JobRecord)
        /// The same `Idempotency-Key` with a different spec (its summary).
        case conflict(JobRecord)
    }

    /// Journals a new job as `queued` (committed before it is spawned), or
    /// finds the job an earlier submit with the same key made.
    func admit(specJSON: String, name: String?, command: String, idempotencyKey: String?,
               timeout: Duration?, runID: Int64) async throws -> Admission {
        try await pool.write { db in
            if let key = idempotencyKey, let (record, earlier) = try Journal.summary(idempotencyKey: key, db) {
                return earlier == specJSON ? .existing(record) : .conflict(record)
            }
            let next = (try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'") ?? 0) + 1
            let timeoutMs = timeout.map { Int64($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }
            try db.execute(sql: """
                INSERT INTO jobs (seq, id, idempotency_key, spec_json, name, command, state, run_id, timeout_ms, submitted_ms)
                VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
                """, arguments: [next, "j\(next)", idempotencyKey, specJSON, name, command, runID, timeoutMs,
                                 WallClockTime.now().milliseconds])
            let row = try Row.fetchOne(db, sql: "SELECT \(JobRecord.columns) FROM jobs WHERE seq = ?", arguments: [next])!
            return .created(JobRecord(row: row))
        }
    }

    // MARK: Reading

    /// One job with its whole result; `pending` are its output chunks not
    /// yet committed (taken before this read), for a result committed
    /// ahead of its last chunks.
    func job(_ id: String, pending: [JournalBatch.Chunk] = []) async throws -> JobRecord? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(JobRecord.columns) FROM jobs WHERE id = ?", arguments: [id]) else {
                return nil
            }
            return try Journal.resolved(JobRecord(row: row), db, pending: pending)
        }
    }

    /// One job's summary (no result): for reads that need its state only.
    func summary(_ id: String) async throws -> JobRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(JobRecord.summaryColumns) FROM jobs WHERE id = ?", arguments: [id]).map(JobRecord.init(row:))
        }
    }

    /// The summary of the job an `Idempotency-Key` made, and its spec (to
    /// tell a replay from a conflict): no result or output is read.
    func summary(idempotencyKey key: String) async throws -> (record: JobRecord, specJSON: String)? {
        try await pool.read { db in try Journal.summary(idempotencyKey: key, db) }
    }

    private static func summary(idempotencyKey key: String, _ db: Database) throws -> (record: JobRecord, specJSON: String)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT \(JobRecord.summaryColumns), spec_json FROM jobs WHERE idempotency_key = ?",
                                         arguments: [key]) else { return nil }
        return (JobRecord(row: row), row["spec_json"])
    }

    /// Newest first, as `filter` says. Only the summary columns: never a
    /// result or its output.
    func jobs(_ filter: JobFilter) async throws -> [JobRecord] {
        try await pool.read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            var either: [String] = []
            if !filter.states.isEmpty {
                either.append("state IN (\(filter.states.map { _ in "?" }.joined(separator: ",")))")
                for state in filter.states { _ = arguments.append(contentsOf: [state.rawValue]) }
            }
            if filter.failed {
                either.append("(state = 'exited' AND exit_code <> 0) OR state IN ('signaled', 'failed_to_start')")
            }
            if !either.isEmpty { conditions.append("(" + either.joined(separator: " OR ") + ")") }
            if let text = filter.text {
                // instr, not LIKE: the text has no wildcards. Case folds ASCII only.
                conditions.append("(instr(lower(command), lower(?)) > 0 OR instr(lower(COALESCE(name, '')), lower(?)) > 0)")
                _ = arguments.append(contentsOf: [text, text])
            }
            if let before = filter.before {
                conditions.append("seq < ?")
                _ = arguments.append(contentsOf: [before])
            }
            if let since = filter.since {
                conditions.append("seq >= ?")
                _ = arguments.append(contentsOf: [since])
            }
            let sql = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            _ = arguments.append(contentsOf: [filter.limit])
            return try Row.fetchAll(db, sql: Journal.listQuery(filter: sql),
                                    arguments: arguments).map(JobRecord.init(row:))
        }
    }

    /// The list query: the summary columns of one page of jobs.
    static func listQuery(filter: String) -> String {
        "SELECT \(JobRecord.summaryColumns) FROM jobs \(filter) ORDER BY seq DESC LIMIT ?"
    }

    func counts() async throws -> [JobState: Int] {
        try await pool.read { db in
            var counts: [JobState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state") {
                if let state = JobState(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Stored output chunks after `afterSeq`, in order; at most `limit`
    /// (a page, so a reader holds a bounded part of a large output).
    func chunks(of id: String, after afterSeq: Int = 0, limit: Int = 1 << 30) async throws -> [OutputRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, stream, data FROM output WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                             arguments: [id, afterSeq, limit])
                .map { OutputRecord(seq: $0["seq"], stream: $0["stream"], bytes: [UInt8]($0["data"] as Data)) }
        }
    }

    /// The output kept of one stream (`combined`: all, in the order read):
    /// the committed chunks, then `pending` ones after them, read with a
    /// cursor into one buffer.
    func output(of id: String, stream: String, pending: [JournalBatch.Chunk]) async throws -> [UInt8] {
        let wanted: @Sendable (String) -> Bool = { chunkStream in
            stream == "combined" || chunkStream == stream || (stream == "stdout" && chunkStream == "combined")
        }
        return try await pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT SUM(length(data)) FROM output WHERE job_id = ?", arguments: [id]) ?? 0
            var bytes: [UInt8] = []
            bytes.reserveCapacity(total)
            var last = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, stream, data FROM output WHERE job_id = ? ORDER BY seq", arguments: [id])
            while let row = try rows.next() {
                last = row["seq"]
                if wanted(row["stream"]) { try row.withUnsafeData(named: "data") { bytes.append(contentsOf: $0 ?? Data()) } }
            }
            for chunk in pending where chunk.seq > last && wanted(chunk.stream) { bytes += chunk.bytes }
            return bytes
        }
    }

    // MARK: Recovery and retention

    /// Bytes of output journaled per stream for one job.
    func journaledBytes(of id: String) throws -> [String: Int] {
        try pool.read { db in
            var bytes: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT stream, SUM(length(data)) AS n FROM output WHERE job_id = ? GROUP BY stream",
                                        arguments: [id]) {
                bytes[row["stream"]] = row["n"]
            }
            return bytes
        }
    }

    /// Jobs a previous run left queued or running.
    func unfinished() throws -> [UnfinishedJob] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT j.id, j.corral_id, j.pid, j.start_ticks, j.cgroup, j.state, j.submitted_ms, j.started_ms, r.cgroup_dir
                FROM jobs j JOIN runs r ON r.id = j.run_id
                WHERE j.state IN ('queued', 'running') ORDER BY j.seq
                """).map { row in
                UnfinishedJob(id: row["id"], corralID: row["corral_id"], pid: row["pid"],
                              startTicks: (row["start_ticks"] as Int64?).map { UInt64($0) }, cgroup: row["cgroup"],
                              state: JobState(rawValue: row["state"]) ?? .queued,
                              startedAt: (row["started_ms"] as Int64?).map(WallClockTime.init(milliseconds:)),
                              runCgroupDirectory: row["cgroup_dir"])
            }
        }
    }

    /// Deletes finished jobs beyond the newest `keep`, and those finished
    /// before `cutoff`, with their output. Returns how many went.
    func prune(keep: Int, finishedBefore cutoff: WallClockTime) async throws -> Int {
        let finals = JobState.finalStates.map { "'\($0.rawValue)'" }.joined(separator: ",")
        return try await pool.write { db in
            try db.execute(sql: """
                CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY);
                DELETE FROM doomed;
                INSERT OR IGNORE INTO doomed SELECT id FROM jobs WHERE state IN (\(finals))
                    AND (finished_ms < ? OR seq <= COALESCE((SELECT seq FROM jobs WHERE state IN (\(finals))
                         ORDER BY seq DESC LIMIT 1 OFFSET ?), -1));
                DELETE FROM output WHERE job_id IN (SELECT id FROM doomed);
                DELETE FROM result_output WHERE job_id IN (SELECT id FROM doomed);
                DELETE FROM jobs WHERE id IN (SELECT id FROM doomed);
                """, arguments: [cutoff.milliseconds, keep])
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM doomed") ?? 0
            try db.execute(sql: "DELETE FROM doomed")
            return count
        }
    }
}
