import Corral
import Foundation
import GRDB

/// The agent's SQLite journal (WAL mode) in its data directory: every job
/// from before it is spawned to its result, its output as it arrives, and
/// the agent runs that started them.
final class Journal: Sendable {
    let pool: DatabasePool
    let path: String

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
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Journal.migrator.migrate(pool)
        } catch {
            throw AgentError("cannot open the journal \(path): \(error)")
        }
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
        /// The same `Idempotency-Key` with the same spec: the job it made.
        case existing(JobRecord)
        /// The same `Idempotency-Key` with a different spec.
        case conflict(JobRecord)
    }

    /// Journals a new job as `queued` (committed before it is spawned), or
    /// finds the job an earlier submit with the same key made.
    func admit(specJSON: String, name: String?, command: String, idempotencyKey: String?,
               timeout: Duration?, runID: Int64) async throws -> Admission {
        try await pool.write { db in
            if let key = idempotencyKey,
               let row = try Row.fetchOne(db, sql: "SELECT \(JobRecord.columns), spec_json FROM jobs WHERE idempotency_key = ?", arguments: [key]) {
                let record = JobRecord(row: row)
                return (row["spec_json"] as String) == specJSON ? .existing(record) : .conflict(record)
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

    func job(_ id: String) async throws -> JobRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(JobRecord.columns) FROM jobs WHERE id = ?", arguments: [id]).map(JobRecord.init(row:))
        }
    }

    func job(idempotencyKey key: String) async throws -> (record: JobRecord, specJSON: String)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(JobRecord.columns), spec_json FROM jobs WHERE idempotency_key = ?", arguments: [key])
                .map { (JobRecord(row: $0), $0["spec_json"]) }
        }
    }

    /// Newest first; `after` is the `seq` of the last job of the previous page.
    func jobs(states: [JobState], limit: Int, before: Int64?) async throws -> [JobRecord] {
        try await pool.read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if !states.isEmpty {
                conditions.append("state IN (\(states.map { _ in "?" }.joined(separator: ",")))")
                for state in states { _ = arguments.append(contentsOf: [state.rawValue]) }
            }
            if let before {
                conditions.append("seq < ?")
                _ = arguments.append(contentsOf: [before])
            }
            let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            _ = arguments.append(contentsOf: [limit])
            return try Row.fetchAll(db, sql: "SELECT \(JobRecord.columns) FROM jobs \(filter) ORDER BY seq DESC LIMIT ?",
                                    arguments: arguments).map(JobRecord.init(row:))
        }
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

    /// Stored output chunks after `afterSeq`, in order.
    func chunks(of id: String, after afterSeq: Int = 0, stream: String? = nil) async throws -> [OutputRecord] {
        try await pool.read { db in try Journal.chunks(db, id, after: afterSeq, stream: stream) }
    }

    func chunksSync(_ db: Database, _ id: String) throws -> [OutputRecord] {
        try Journal.chunks(db, id, after: 0, stream: nil)
    }

    private static func chunks(_ db: Database, _ id: String, after afterSeq: Int, stream: String?) throws -> [OutputRecord] {
            let rows: [Row]
            if let stream {
                rows = try Row.fetchAll(db, sql: "SELECT seq, stream, data FROM output WHERE job_id = ? AND seq > ? AND stream = ? ORDER BY seq",
                                        arguments: [id, afterSeq, stream])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT seq, stream, data FROM output WHERE job_id = ? AND seq > ? ORDER BY seq",
                                        arguments: [id, afterSeq])
            }
            return rows.map { OutputRecord(seq: $0["seq"], stream: $0["stream"], bytes: [UInt8]($0["data"] as Data)) }
    }

    // MARK: Writing

    /// One batch from the writer: everything in one transaction.
    func apply(_ batch: JournalBatch) async throws {
        try await pool.write { db in try Journal.write(batch, in: db) }
    }

    func applySync(_ batch: JournalBatch) throws {
        try pool.write { db in try Journal.write(batch, in: db) }
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
                    result_json = ?, message = ?, started_ms = COALESCE(started_ms, ?)
                WHERE id = ?
                """, arguments: [final.state.rawValue, final.finishedAt.milliseconds, final.exitCode, final.signal,
                                 final.durationSeconds, final.resultJSON, final.message,
                                 final.startedAt?.milliseconds, final.jobID])
        }
    }

    // MARK: Recovery and retention

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
                DELETE FROM jobs WHERE id IN (SELECT id FROM doomed);
                """, arguments: [cutoff.milliseconds, keep])
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM doomed") ?? 0
            try db.execute(sql: "DELETE FROM doomed")
            return count
        }
    }
}

/// A stored piece of output.
struct OutputRecord: Sendable {
    let seq: Int
    let stream: String
    let bytes: [UInt8]
}

/// A job a previous agent run did not finish.
struct UnfinishedJob: Sendable {
    let id: String
    let corralID: String?
    let pid: Int32?
    let startTicks: UInt64?
    let cgroup: String?
    let state: JobState
    let startedAt: WallClockTime?
    let runCgroupDirectory: String?
}

/// What the writer commits in one transaction.
struct JournalBatch: Sendable {
    struct Chunk: Sendable {
        let jobID: String
        let seq: Int
        let stream: String
        let bytes: [UInt8]
    }
    struct Start: Sendable {
        let jobID: String
        let corralID: String
        let pid: Int32
        let startTicks: UInt64?
        let cgroup: String?
        let startedAt: WallClockTime
    }
    struct Final: Sendable {
        let jobID: String
        let state: JobState
        let finishedAt: WallClockTime
        let startedAt: WallClockTime?
        let exitCode: Int32?
        let signal: String?
        let durationSeconds: Double?
        let resultJSON: String
        let message: String?
        /// For metrics: result delivered minus deadline, for timed-out jobs.
        var overshootSeconds: Double? = nil
        var pipesForceClosed = false
    }
    var chunks: [Chunk] = []
    var starts: [Start] = []
    var finals: [Final] = []
    var isEmpty: Bool { chunks.isEmpty && starts.isEmpty && finals.isEmpty }
}
