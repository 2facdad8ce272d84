import CorralTestSupport
import Foundation
import XCTest

/// What keeps a run moving whatever dies: the server, the reaper's own gaps,
/// an agent that heartbeats but never reports.
final class FleetLivenessTests: FleetTestCase {
    func testServerKilledMidRunAgentsRunOnAndOutcomesAreThereWhenItIsBack() throws {
        for name in ["v1", "v2", "v3"] { try startAgent(name) }
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo ran >> ran.txt; sleep 2; echo done","timeout":"30s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.runView(run)["counts"] as? [String: Int])??["running"] == 3 })
        server.signal(SIGKILL)
        XCTAssertNotNil(server.waitForExit())
        // The agents do not need the server: they finish and report through
        // the database, and go on heartbeating.
        XCTAssertTrue(waitUntil { self.jobProcesses().isEmpty }, "left: \(jobProcesses())")
        Thread.sleep(forTimeInterval: 3)  // past the TTL of 2 s, with no reaper running

        try restartServer()
        let view = try waitForRun(run)
        XCTAssertEqual(view["state"] as? String, "done")
        for (host, task) in tasks(view) {
            XCTAssertEqual(task["state"] as? String, "exited", "\(host): \(task)")
            XCTAssertEqual((task["result"] as? [String: Any])?["stdout"] as? String, "done\n", host)
            XCTAssertTrue(task["reconciled_at"] is NSNull, "\(host) reported once, on time: \(task)")
        }
        for name in ["v1", "v2", "v3"] {
            XCTAssertEqual(agentState(name), "up", "\(name) heartbeated through")
            XCTAssertEqual(try String(contentsOfFile: scratch.appendingPathComponent("\(name)/ran.txt").path, encoding: .utf8), "ran\n")
        }
        // And the restarted server hands out new runs.
        XCTAssertEqual(try waitForRun(try createRun(#"{"target":{"all":true},"job":{"shell":"true"}}"#))["state"] as? String, "done")
    }

    /// Nobody heartbeats while the database is down, and nobody reaps
    /// while every server is: the first reaper pass after such a gap does
    /// not call an agent down for silence that began before it. Here the
    /// gap is made by hand (the last pass an hour ago, the agent last seen
    /// an hour ago), and the pass is the test's own, under the reaper's
    /// lock; a real agent that stays silent is still down a TTL later.
    /// Without a gap, a silent agent is down at once.
    func testTheFirstReaperPassAfterAGapDoesNotCallSilentAgentsDown() throws {
        // Without a gap (the last pass ended 0.9 s ago, under half the TTL
        // of 2 s), the watch goes on and an agent silent for an hour is down
        // at once.
        try reapUnderTheLock(agentSilentForAnHour: "steady", lastPassEndedAgo: "0.9 seconds", expecting: "down")
        try reapUnderTheLock(agentSilentForAnHour: "before", lastPassEndedAgo: "1 hour", expecting: "up")
        var states: [String] = []
        XCTAssertTrue(waitUntil(upTo: .seconds(30)) {
            let state = self.agentState("before") ?? "?"
            if states.last != state { states.append(state) }
            return state == "down"
        }, "still silent a TTL into the new watch: down (\(states))")
    }

    /// One reaper pass of the test's own, under the reaper's lock (the
    /// server's passes wait): an agent last seen an hour ago, the last pass
    /// ended `ago`, the watch two hours old; fails unless the agent is then
    /// `expected`.
    private func reapUnderTheLock(agentSilentForAnHour name: String, lastPassEndedAgo ago: String, expecting expected: String) throws {
        try awaitSQL("""
            DO $$
            DECLARE
              seen text;
            BEGIN
              PERFORM pg_advisory_xact_lock(hashtext('corral.fleet.reaper'));
              INSERT INTO agent (name, seen_at, state) VALUES ('\(name)', now() - interval '1 hour', 'up');
              INSERT INTO reaper_watch (reaped_at, watching_since) VALUES (now() - interval '\(ago)', now() - interval '2 hours')
                ON CONFLICT (one) DO UPDATE SET reaped_at = excluded.reaped_at, watching_since = excluded.watching_since;
              IF fleet_reap('2 seconds') < 0 THEN RAISE EXCEPTION 'the reaper lock was not ours'; END IF;
              SELECT state INTO seen FROM agent WHERE name = '\(name)';
              IF seen <> '\(expected)' THEN
                RAISE EXCEPTION 'last pass \(ago) ago: the agent is %, not \(expected)', seen;
              END IF;
            END $$
            """)
    }

    /// An agent that heartbeats but never reports (here: its statements
    /// made by hand) cannot keep a task running: past the job's deadline
    /// + grace + TTL the server ends it `lost`.
    func testTaskWithoutAnOutcomePastItsDeadlineIsLostWhileItsAgentHeartbeats() throws {
        try awaitSQL("INSERT INTO agent (name) VALUES ('mute')")
        // Deadline: timeout 1 s + kill grace 1 s + drain 1 s.
        let run = try createRun(#"{"target":{"hosts":["mute"]},"job":{"shell":"true","timeout":"1s","kill_after":"1s","drain":"1s"}}"#)
        try awaitSQL("SELECT fleet_claim((SELECT agent_id FROM agent WHERE name = 'mute'), ARRAY[gen_random_uuid()])")
        XCTAssertEqual(tasks(try runView(run))["mute"]?["state"] as? String, "running")
        var states: Set<String> = []
        let lost = waitUntil(upTo: .seconds(40)) {
            try? self.awaitSQL("SELECT fleet_heartbeat((SELECT agent_id FROM agent WHERE name = 'mute'), gen_random_uuid())")
            states.insert(self.agentState("mute") ?? "?")
            return (try? self.tasks(self.runView(run))["mute"]?["state"] as? String) == "lost"
        }
        XCTAssertTrue(lost, "\((try? runView(run)) ?? [:])")
        XCTAssertEqual(states, ["up"], "the agent was never silent")
        XCTAssertEqual(tasks(try runView(run))["mute"]?["note"] as? String,
                       "no outcome from the agent by the deadline + grace + TTL; it is not run again")
        XCTAssertEqual(try runView(run)["state"] as? String, "done")
    }
}

/// A longer TTL (6 s), so that the `suspect` stretch (past half the TTL)
/// is seconds long.
final class FleetSuspectAgentTests: FleetTestCase {
    override var agentTTL: String { "6s" }

    func testSilentAgentIsSuspectThenUpAgainWithItsTaskKept() throws {
        let agent = try startAgent("q1")
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"sleep 5; echo finished","timeout":"60s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.tasks(self.runView(run))["q1"]?["state"] as? String) == "running" })
        agent.signal(SIGSTOP)
        XCTAssertTrue(waitUntil(upTo: .seconds(20)) { self.agentState("q1") == "suspect" }, "\(agentState("q1") ?? "?")")
        XCTAssertEqual(tasks(try runView(run))["q1"]?["state"] as? String, "running", "a suspect agent keeps its task")
        agent.signal(SIGCONT)
        XCTAssertTrue(waitUntil { self.agentState("q1") == "up" })
        let view = try waitForRun(run)
        XCTAssertEqual(tasks(view)["q1"]?["state"] as? String, "exited", "\(view)")
        XCTAssertTrue(tasks(view)["q1"]?["reconciled_at"] is NSNull, "never lost")
    }
}

/// PostgreSQL itself stopped mid-run, past twice the TTL (5 s here, so that
/// agents back within a few seconds of the database are not called down
/// on a loaded machine: the reaper counts silence from when it could
/// watch again).
final class FleetPostgreSQLStoppedTests: FleetTestCase {
    override var agentTTL: String { "5s" }

    func testPostgreSQLStoppedForTenSecondsMidRunLosesAndDuplicatesNothing() throws {
        guard let cluster = ProcessInfo.processInfo.environment["CORRAL_TEST_PG_DIR"], !cluster.isEmpty else {
            throw XCTSkip("SKIPPED: CORRAL_TEST_PG_DIR is not set (scripts/test sets it); the database cannot be stopped")
        }
        // A fresh connection pool every 2 s while calls fail: postgres-nio's
        // own reconnection backoff would reach about 2.5 s by the end of the
        // outage.
        let agents = try ["p1", "p2"].map { try startAgent($0, extra: ["--fleet-reconnect", "2s"]) }
        // One job outlives the outage and ends by itself during it, one is
        // stopped by its deadline during it.
        let finishing = try createRun(#"{"target":{"all":true},"job":{"shell":"echo ran >> ran.txt; echo begin; sleep 3; echo end","timeout":"30s"}}"#)
        let stopped = try createRun(#"{"target":{"all":true},"job":{"shell":"echo waiting; sleep 120","timeout":"2s"}}"#)
        XCTAssertTrue(waitUntil {
            (try? self.runView(finishing)["counts"] as? [String: Int])??["running"] == 2
                && (try? self.runView(stopped)["counts"] as? [String: Int])??["running"] == 2
        })
        try pgCluster(["pause", cluster])
        var paused = true
        defer { if paused { try? pgCluster(["resume", cluster]) } }
        let stoppedAt = ContinuousClock.now
        // Deadlines are the agents', not the database's.
        XCTAssertTrue(waitUntil(upTo: .seconds(9)) { self.jobProcesses().isEmpty },
                      "the jobs end by themselves and by their deadline while the database is down: \(jobProcesses())")
        let (status, json) = try request("GET", "/v1/runs/\(finishing)")
        XCTAssertEqual(status, 503, "the server says the database is unavailable: \(json)")
        XCTAssertEqual((json["error"] as? [String: Any])?["code"] as? String, "database_unavailable")
        let left = stoppedAt + .seconds(10) - ContinuousClock.now
        if left > .zero { Thread.sleep(forTimeInterval: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18) }
        try pgCluster(["resume", cluster])
        paused = false

        let first = try waitForRun(finishing)
        let second = try waitForRun(stopped)
        for host in ["p1", "p2"] {
            let done = tasks(first)[host] ?? [:]
            XCTAssertEqual(done["state"] as? String, "exited", "\(host): \(done)")
            XCTAssertEqual((done["result"] as? [String: Any])?["stdout"] as? String, "begin\nend\n")
            XCTAssertEqual(try output(finishing, host)["output"] as? String, "begin\nend\n", "each chunk once")
            let killed = tasks(second)[host] ?? [:]
            XCTAssertTrue(done["reconciled_at"] is NSNull, "\(host): never lost, so never reconciled: \(done)")
            XCTAssertEqual(killed["state"] as? String, "timed_out", "\(host): \(killed)")
            XCTAssertTrue(killed["reconciled_at"] is NSNull, "\(host): never lost, so never reconciled: \(killed)")
            XCTAssertEqual((killed["result"] as? [String: Any])?["stdout"] as? String, "waiting\n")
            XCTAssertEqual(try output(stopped, host)["output"] as? String, "waiting\n", "each chunk once")
            XCTAssertEqual(try String(contentsOfFile: scratch.appendingPathComponent("\(host)/ran.txt").path, encoding: .utf8),
                           "ran\n", "never run again")
        }
        XCTAssertTrue(waitUntil { self.agentState("p1") == "up" && self.agentState("p2") == "up" })
        for agent in agents {
            XCTAssertTrue(agent.output.contains("a fresh database connection pool"), "renewed while it failed: \(agent.output)")
        }
    }
}
