import Foundation
import GRDB
import Synchronization
import XCTest
import CorralTestSupport

/// The agent's own crash, and load: every job ends in a final state in the
/// journal, with its output, and nothing of it is left running.
final class AgentRecoveryTests: AgentTestCase {
    func testKillMinus9ThenRestartMarksTheJobLostStopsItsProcessesAndRunsNewJobs() throws {
        let agent = try startAgent(inPrivateCgroup: true)
        let client = agent.client
        // A job with a grandchild in a new session: only the journal can find it later.
        let spec = #"{"shell":"echo before the crash; setsid sleep 300 & sleep 300","timeout":"10m"}"#
        let id = try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))
        XCTAssertTrue(waitUntil { (try? client.get("/v1/jobs/\(id)/output").text) == "before the crash\n" })
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).filter { $0.hasSuffix(" sleep") }.count == 2 })
        // Give the writer time to commit the output (it batches every 50 ms here).
        XCTAssertTrue(waitUntil { self.storedOutput(of: id) == "before the crash\n" })

        // Its runner's watchdog first, as when both are killed at once (a
        // kill -9 of the whole cgroup or session): then only the journal can
        // find the job. The leader still dies with the agent (PDEATHSIG).
        // (The agents run in a private cgroup: any other corral starting on
        // the machine would empty the dead runner's directory first.)
        let watchdog = try XCTUnwrap(watchdog(of: agent))
        kill(watchdog, SIGKILL)
        XCTAssertTrue(waitUntil { !self.markedProcesses().contains { $0.hasPrefix("\(watchdog) ") } })
        agent.crash()
        XCTAssertNotNil(agent.waitForExit())
        let orphans = jobProcesses(of: agent).filter { $0.hasSuffix(" sleep") }
        XCTAssertEqual(orphans.count, 2, "the crash itself must not have stopped the grandchildren: \(orphans)")

        let restarted = try startAgent(inPrivateCgroup: true)
        let job = try restarted.client.get("/v1/jobs/\(id)").json
        XCTAssertEqual(job["state"] as? String, "lost")
        XCTAssertEqual(job["final"] as? Bool, true)
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        XCTAssertEqual(result["outcome"] as? String, "lost")
        XCTAssertEqual(result["stdout"] as? String, "before the crash\n")
        XCTAssertEqual((result["killed"] as? [[String: Any]])?.count, 2, "the two sleeps: \(result)")
        XCTAssertTrue((job["message"] as? String ?? "").contains("were killed"), "\(job)")
        XCTAssertTrue(waitUntil { self.jobProcesses(of: restarted).isEmpty }, "\(jobProcesses(of: restarted))")

        let next = try XCTUnwrap(try restarted.client.post("/v1/jobs", json: #"{"shell":"echo after"}"#).json["id"] as? String)
        let after = try waitForFinal(restarted.client, next)
        XCTAssertEqual(after["state"] as? String, "exited")
        XCTAssertEqual((after["result"] as? [String: Any])?["stdout"] as? String, "after\n")
    }

    /// Issue 11, item 5: with its watchdog alive, the agent's death takes
    /// its jobs with it at once; the restart still marks them lost.
    func testKillMinus9StopsTheJobsAtOnceAndRestartMarksThemLost() throws {
        let agent = try startAgent(inPrivateCgroup: true)
        let client = agent.client
        let spec = #"{"shell":"echo before the crash; setsid sleep 300 & sleep 300","timeout":"10m"}"#
        let id = try XCTUnwrap(try client.post("/v1/jobs", json: spec).json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))
        XCTAssertTrue(waitUntil { self.jobProcesses(of: agent).filter { $0.hasSuffix(" sleep") }.count == 2 })
        XCTAssertTrue(waitUntil { self.storedOutput(of: id) == "before the crash\n" })

        agent.crash()
        let crashed = ContinuousClock.now
        XCTAssertTrue(EndToEnd.waitUntil(upTo: .seconds(5), polling: 5_000) { self.jobProcesses(of: agent).isEmpty },
                      "left after the crash: \(jobProcesses(of: agent))")
        XCTAssertLessThan(ContinuousClock.now - crashed, .seconds(2))
        XCTAssertNotNil(agent.waitForExit())

        let restarted = try startAgent(inPrivateCgroup: true)
        let job = try restarted.client.get("/v1/jobs/\(id)").json
        XCTAssertEqual(job["state"] as? String, "lost")
        let result = try XCTUnwrap(job["result"] as? [String: Any])
        XCTAssertEqual(result["stdout"] as? String, "before the crash\n")
        XCTAssertEqual((result["killed"] as? [[String: Any]])?.count ?? 0, 0, "\(result)")
        XCTAssertTrue((job["message"] as? String ?? "").contains("none of its processes"), "\(job)")
    }

    func testTwoThousandConcurrentSubmitsAllReachTheJournal() throws {
        let agent = try startAgent(["--max-jobs", "64"])
        let port = agent.port
        let clients = 50, perClient = 40
        let failures = Mutex<[String]>([])
        let ids = Mutex<Set<String>>([])
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            let http = HTTPClient(port: port)
            for index in 0..<perClient {
                do {
                    let response = try http.post("/v1/jobs", json: #"{"argv":["echo","job \#(client)-\#(index)"],"timeout":"60s"}"#)
                    guard response.status == 201, let id = response.json["id"] as? String else {
                        failures.withLock { $0.append("\(response.status) \(response.text)") }
                        continue
                    }
                    ids.withLock { _ = $0.insert(id) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        XCTAssertEqual(ids.withLock { $0.count }, clients * perClient)

        let client = agent.client
        XCTAssertTrue(waitUntil(upTo: .seconds(180)) {
            let page = (try? client.get("/v1/jobs?state=queued,running&limit=1").json) ?? [:]
            return (page["jobs"] as? [Any])?.isEmpty == true && page["running"] as? Int == 0 && page["queued"] as? Int == 0
        })
        agent.terminate()
        XCTAssertNotNil(agent.waitForExit())

        // Straight from the journal: 2,000 final results, each with its own output.
        // (The result's output is stored once, in the output chunks.)
        let database = try DatabaseQueue(path: dataDirectory + "/journal.sqlite")
        let (states, outputs) = try database.read { db in
            (try String.fetchAll(db, sql: "SELECT state FROM jobs"),
             try Row.fetchAll(db, sql: """
                SELECT j.id, r.head, group_concat(CAST(o.data AS TEXT), '') AS text FROM jobs j
                JOIN result_output r ON r.job_id = j.id AND r.stream = 'stdout'
                LEFT JOIN output o ON o.job_id = j.id AND o.stream = 'stdout' GROUP BY j.id
                """))
        }
        XCTAssertEqual(states.count, clients * perClient)
        XCTAssertEqual(states.filter { $0 == "exited" }.count, clients * perClient)
        XCTAssertEqual(outputs.count, clients * perClient)
        XCTAssertTrue(outputs.allSatisfy { ($0["text"] as String? ?? "").utf8.count == $0["head"] as Int }, "heads match the chunks")
        XCTAssertEqual(Set(outputs.compactMap { $0["text"] as String? }).count, clients * perClient, "every job kept its own output")
        XCTAssertTrue(waitUntil { self.markedProcesses().isEmpty }, "\(markedProcesses())")
    }

    private func storedOutput(of id: String) -> String? {
        guard let database = try? DatabaseQueue(path: dataDirectory + "/journal.sqlite") else { return nil }
        return try? database.read { db in
            let chunks = try Data.fetchAll(db, sql: "SELECT data FROM output WHERE job_id = ? ORDER BY seq", arguments: [id])
            return String(decoding: chunks.reduce(Data(), +), as: UTF8.self)
        }
    }
}

/// The journal's schema upgrades in place (GRDB migrator).
final class AgentJournalMigrationTests: AgentTestCase {
    /// A journal written before results stored their output once (schema
    /// v1, output inline in `result_json`) opens, reads as before, and
    /// takes new jobs.
    func testVersion1JournalUpgradesAndReadsAsBefore() throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let database = try DatabaseQueue(path: dataDirectory + "/journal.sqlite")
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1');
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL, started_ms INTEGER NOT NULL,
                    ended_ms INTEGER, cgroup_dir TEXT);
                CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, idempotency_key TEXT UNIQUE,
                    spec_json TEXT NOT NULL, name TEXT, command TEXT NOT NULL, state TEXT NOT NULL, run_id INTEGER NOT NULL,
                    corral_id TEXT, pid INTEGER, start_ticks INTEGER, cgroup TEXT, timeout_ms INTEGER, submitted_ms INTEGER NOT NULL,
                    started_ms INTEGER, finished_ms INTEGER, exit_code INTEGER, signal TEXT, duration_s REAL, result_json TEXT,
                    message TEXT);
                CREATE INDEX jobs_by_state ON jobs(state, seq);
                CREATE TABLE output (job_id TEXT NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL, data BLOB NOT NULL,
                    PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
                INSERT INTO runs (pid, started_ms, ended_ms) VALUES (1, 1700000000000, 1700000001000);
                INSERT INTO jobs (id, spec_json, command, state, run_id, submitted_ms, started_ms, finished_ms, exit_code,
                    duration_s, result_json)
                VALUES ('j1', '{"argv":["echo","old"]}', 'echo old', 'exited', 1, unixepoch() * 1000 - 300, unixepoch() * 1000 - 200,
                    unixepoch() * 1000 - 100, 0,
                    0.1, '{"id":"j1","outcome":"exited","exit_code":0,"signal":null,"stdout":"old\\n","stderr":"","stdout_dropped":0}');
                INSERT INTO output VALUES ('j1', 1, 'stdout', CAST('old' || char(10) AS BLOB));
                """)
        }
        try database.close()

        let agent = try startAgent()
        let client = agent.client
        let old = try client.get("/v1/jobs/j1").json
        XCTAssertEqual(old["state"] as? String, "exited")
        XCTAssertEqual((old["result"] as? [String: Any])?["stdout"] as? String, "old\n")
        let created = try client.post("/v1/jobs", json: #"{"argv":["echo","new"]}"#)
        XCTAssertEqual(created.json["id"] as? String, "j2", created.text)
        let new = try waitForFinal(client, "j2")
        XCTAssertEqual((new["result"] as? [String: Any])?["stdout"] as? String, "new\n")
        XCTAssertEqual((try client.get("/v1/jobs").json["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, ["j2", "j1"])
    }
}
