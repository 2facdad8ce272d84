import CorralTestSupport
import Foundation
import XCTest

/// An agent that dies or goes silent mid-run: its task is `lost` after the
/// TTL (an error, never run again) and the run completes without it; when
/// the agent is back it reports what its journal recorded.
final class FleetAgentDeathTests: FleetTestCase {
    func testKilledAgentsTaskIsLostThenReconciledFromItsJournalAndNeverRerun() throws {
        for name in ["k1", "k2"] { try startAgent(name) }
        let victim = try startAgent("k3")
        // Each start of the job leaves a line in its host's directory.
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"echo ran >> ran.txt; sleep 4; echo done","timeout":"30s"}}"#)
        let ranFile = scratch.appendingPathComponent("k3/ran.txt").path
        XCTAssertTrue(waitUntil {
            (try? self.tasks(self.runView(run))["k3"]?["state"] as? String) == "running"
                && FileManager.default.fileExists(atPath: ranFile)
        })
        victim.signal(SIGKILL)
        XCTAssertNotNil(victim.waitForExit())

        let view = try waitForRun(run, upTo: .seconds(60))
        var tasks = tasks(view)
        XCTAssertEqual(tasks["k3"]?["state"] as? String, "lost", "\(tasks)")
        XCTAssertEqual(tasks["k1"]?["state"] as? String, "exited")
        XCTAssertEqual(tasks["k2"]?["state"] as? String, "exited")
        XCTAssertEqual(view["state"] as? String, "done")
        XCTAssertEqual(view["errors"] as? Int, 1, "lost counts as an error")
        XCTAssertTrue(tasks["k3"]?["reconciled_at"] is NSNull)

        // Back with its journal: the job it was running when it died is
        // `lost` there too; the server records that it heard so.
        try startAgent("k3")
        XCTAssertTrue(waitUntil {
            tasks = (try? self.tasks(self.runView(run))) ?? [:]
            return !(tasks["k3"]?["reconciled_at"] is NSNull) && tasks["k3"]?["reconciled_at"] != nil
        }, "\(tasks)")
        XCTAssertEqual(tasks["k3"]?["state"] as? String, "lost")
        XCTAssertEqual((tasks["k3"]?["result"] as? [String: Any])?["outcome"] as? String, "lost")
        // A few polls later it still ran once.
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(try String(contentsOfFile: ranFile, encoding: .utf8), "ran\n", "never run again")
    }

    /// Two agents given one name with two journals (a cloned host): the
    /// second does not join while the first is up and runs nothing of the
    /// fleet's; once the first is down it takes the name over, and the first,
    /// back, waits in turn. A restart with its own journal takes it at once.
    func testASecondAgentOfTheSameNameJoinsOnlyOnceTheFirstIsDown() throws {
        let first = try startAgent("twin")
        let clone = try startAgent("twin", wait: false, directoryName: "twin-clone")
        XCTAssertTrue(waitUntil { clone.output.contains(#"is in the fleet as "twin""#) }, clone.output)
        func ranIn(_ run: Int) throws -> String {
            let view = try waitForRun(run)
            XCTAssertEqual(tasks(view)["twin"]?["state"] as? String, "exited", "\(view)")
            return try output(run, "twin")["output"] as? String ?? ""
        }
        let job = #"{"target":{"hosts":["twin"]},"job":{"shell":"pwd"}}"#
        XCTAssertEqual(try ranIn(try createRun(job)), scratch.appendingPathComponent("twin").path + "\n")
        XCTAssertTrue(first.output.contains("joined the fleet"))
        XCTAssertFalse(clone.output.contains("joined the fleet"), clone.output)

        // The first dies: once the reaper calls it down, the clone joins.
        first.signal(SIGKILL)
        XCTAssertNotNil(first.waitForExit())
        XCTAssertTrue(waitUntil { clone.output.contains("joined the fleet") }, clone.output)
        XCTAssertEqual(try ranIn(try createRun(job)), scratch.appendingPathComponent("twin-clone").path + "\n")

        // The first, back with its journal, now waits for the clone.
        let back = try startAgent("twin", wait: false)
        XCTAssertTrue(waitUntil { back.output.contains(#"is in the fleet as "twin""#) }, back.output)
        XCTAssertEqual(try ranIn(try createRun(job)), scratch.appendingPathComponent("twin-clone").path + "\n")

        // The clone restarted (same journal) takes its name back at once,
        // with no wait for the reaper: the server is stopped meanwhile, so
        // no reaper pass can call the clone down and hand the name to the
        // first (which still tries every 300 ms).
        server.signal(SIGSTOP)
        defer { server.signal(SIGCONT) }
        clone.signal(SIGKILL)
        XCTAssertNotNil(clone.waitForExit())
        let restarted = try startAgent("twin", wait: false, directoryName: "twin-clone")
        XCTAssertTrue(waitUntil(upTo: .seconds(60)) { restarted.output.contains("joined the fleet") }, restarted.output)
        server.signal(SIGCONT)
        XCTAssertFalse(back.output.contains("joined the fleet"), back.output)
        XCTAssertEqual(try ranIn(try createRun(job)), scratch.appendingPathComponent("twin-clone").path + "\n")
    }

    /// The name rules in SQL, each asserted in the database: a second
    /// journal is told who holds a name (never answered with nothing); a
    /// row of an older agent (no instance) is taken at once, and its older
    /// heartbeat and claim then hear CR001; a down holder is taken over;
    /// a claim by a displaced journal hears CR001, by a displaced process
    /// CR002, and claims nothing.
    func testTheNameRulesHoldInTheDatabase() throws {
        try awaitSQL("""
            DO $$
            DECLARE r record; b1 uuid := gen_random_uuid(); b2 uuid := gen_random_uuid(); id bigint;
            BEGIN
              SELECT * INTO r FROM fleet_register('n1', '{}', 'v', b1, 'i1');
              ASSERT r.agent_id IS NOT NULL, 'a new name is registered';
              id := r.agent_id;
              SELECT * INTO r FROM fleet_register('n1', '{}', 'v', b2, 'i2');
              ASSERT r.agent_id IS NULL AND r.holder = 'i1' AND r.holder_seen_at IS NOT NULL, 'another journal is told the holder';
              INSERT INTO agent (name) VALUES ('old');
              SELECT * INTO r FROM fleet_register('old', '{}', 'v', b2, 'i2');
              ASSERT r.agent_id IS NOT NULL, 'a row of an older agent is taken at once';
              BEGIN
                PERFORM fleet_heartbeat(r.agent_id, gen_random_uuid());
                RAISE EXCEPTION 'the older heartbeat went through';
              EXCEPTION WHEN SQLSTATE 'CR001' THEN NULL;
              END;
              BEGIN
                PERFORM fleet_claim(r.agent_id, ARRAY[gen_random_uuid()]);
                RAISE EXCEPTION 'the older claim went through';
              EXCEPTION WHEN SQLSTATE 'CR001' THEN NULL;
              END;
              UPDATE agent SET state = 'down' WHERE agent_id = id;
              SELECT * INTO r FROM fleet_register('n1', '{}', 'v', b2, 'i2');
              ASSERT r.agent_id = id, 'a down holder is taken over, same row';
              BEGIN
                PERFORM fleet_claim(id, ARRAY[gen_random_uuid()], 'i1', b1);
                RAISE EXCEPTION 'a displaced journal claimed';
              EXCEPTION WHEN SQLSTATE 'CR001' THEN NULL;
              END;
              BEGIN
                PERFORM fleet_heartbeat(id, gen_random_uuid(), 'i2');
                RAISE EXCEPTION 'a displaced process heartbeated';
              EXCEPTION WHEN SQLSTATE 'CR002' THEN NULL;
              END;
              ASSERT (SELECT count(*) FROM fleet_heartbeat(id, b2, 'i2')) = 0, 'the holder heartbeats';
              -- A rollback: the older agent's upsert (boot only) then its
              -- heartbeat and claim hold the row; the newer one hears CR001.
              UPDATE agent SET boot_id = b1, seen_at = now(), state = 'up' WHERE agent_id = id;
              ASSERT (SELECT count(*) FROM fleet_heartbeat(id, b1)) = 0, 'the older agent that registered last heartbeats';
              ASSERT (SELECT count(*) FROM fleet_claim(id, ARRAY[gen_random_uuid()])) = 0, 'and claims';
              BEGIN
                PERFORM fleet_heartbeat(id, b2, 'i2');
                RAISE EXCEPTION 'the newer agent kept the row';
              EXCEPTION WHEN SQLSTATE 'CR001' THEN NULL;
              END;
            END $$;
            """)
    }

    /// A copy of an agent's data directory on a second host carries its
    /// journal: the copy started last holds the name and the one it
    /// displaced stands aside (it hears CR002) instead of both claiming.
    func testACopyOfAnAgentsDataDirectoryDisplacesItInsteadOfSharingTheName() throws {
        let original = try startAgent("copied")
        original.signal(SIGTERM)
        XCTAssertNotNil(original.waitForExit())
        let copy = scratch.appendingPathComponent("copied-elsewhere")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: scratch.appendingPathComponent("copied/data"), to: copy.appendingPathComponent("data"))
        // The original back first, then the copy: the copy registers last.
        let first = try startAgent("copied")
        let second = try startAgent("copied", wait: false, directoryName: "copied-elsewhere")
        XCTAssertTrue(waitUntil { second.output.contains("joined the fleet") }, second.output)
        XCTAssertTrue(waitUntil { first.output.contains("takes no fleet task while that one is up") }, first.output)
        for _ in 0..<3 {
            let run = try createRun(#"{"target":{"hosts":["copied"]},"job":{"shell":"pwd"}}"#)
            XCTAssertEqual(tasks(try waitForRun(run))["copied"]?["state"] as? String, "exited")
            XCTAssertEqual(try output(run, "copied")["output"] as? String, copy.path + "\n", "only the holder runs tasks")
        }
        XCTAssertEqual(agentState("copied"), "up")
        // The copy gone (down past the TTL), the original takes its name back.
        second.signal(SIGKILL)
        XCTAssertNotNil(second.waitForExit())
        XCTAssertTrue(waitUntil { first.output.components(separatedBy: "joined the fleet").count == 3 }, first.output)
        let run = try createRun(#"{"target":{"hosts":["copied"]},"job":{"shell":"pwd"}}"#)
        XCTAssertEqual(tasks(try waitForRun(run))["copied"]?["state"] as? String, "exited")
        XCTAssertEqual(try output(run, "copied")["output"] as? String, scratch.appendingPathComponent("copied").path + "\n")
    }

    /// The holder of a name goes silent (SIGSTOP) past the TTL, a waiting
    /// agent of the same name takes it over; the first, resumed, hears so in
    /// its next heartbeat and waits instead of marking the row up for the
    /// other.
    func testAnAgentWhoseNameWasTakenOverWhileSilentStandsAside() throws {
        let first = try startAgent("twin")
        let clone = try startAgent("twin", wait: false, directoryName: "twin-clone")
        XCTAssertTrue(waitUntil { clone.output.contains(#"is in the fleet as "twin""#) }, clone.output)
        // A task the first runs while it is stopped: lost past the TTL.
        let running = try createRun(#"{"target":{"hosts":["twin"]},"job":{"shell":"sleep 3; echo done","timeout":"60s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.tasks(self.runView(running))["twin"]?["state"] as? String) == "running" })
        first.signal(SIGSTOP)
        XCTAssertTrue(waitUntil { clone.output.contains("joined the fleet") }, clone.output)
        XCTAssertEqual(tasks(try waitForRun(running))["twin"]?["state"] as? String, "lost")
        first.signal(SIGCONT)
        XCTAssertTrue(waitUntil { first.output.contains("took over the name") }, first.output)
        XCTAssertTrue(waitUntil { first.output.components(separatedBy: #"is in the fleet as "twin""#).count > 1 }, first.output)
        // Without its name it still reports what it ran: the job's own end.
        var task: [String: Any] = [:]
        XCTAssertTrue(waitUntil {
            task = (try? self.tasks(self.runView(running))["twin"]) ?? [:]
            return task["reconciled_at"] is String
        }, "\(task)")
        XCTAssertEqual((task["result"] as? [String: Any])?["outcome"] as? String, "exited", "\(task)")
        let run = try createRun(#"{"target":{"hosts":["twin"]},"job":{"shell":"pwd"}}"#)
        XCTAssertEqual(tasks(try waitForRun(run))["twin"]?["state"] as? String, "exited")
        XCTAssertEqual(try output(run, "twin")["output"] as? String, scratch.appendingPathComponent("twin-clone").path + "\n")
        XCTAssertEqual(agentState("twin"), "up")
    }

    func testSilentAgentsTaskIsLostThenTakesTheOutcomeItsJobHad() throws {
        try startAgent("s1")
        let silent = try startAgent("s2")
        let run = try createRun(#"{"target":{"all":true},"job":{"shell":"sleep 3; echo finished","timeout":"30s"}}"#)
        XCTAssertTrue(waitUntil { (try? self.tasks(self.runView(run))["s2"]?["state"] as? String) == "running" })
        // Stopped, the agent neither heartbeats nor reaps; its job runs on.
        silent.signal(SIGSTOP)
        let view = try waitForRun(run, upTo: .seconds(60))
        var tasks = tasks(view)
        XCTAssertEqual(tasks["s2"]?["state"] as? String, "lost", "\(tasks)")
        XCTAssertEqual(view["state"] as? String, "done")
        XCTAssertTrue(waitUntil { self.jobProcesses().isEmpty }, "the job ends on its own: \(jobProcesses())")

        silent.signal(SIGCONT)
        XCTAssertTrue(waitUntil {
            tasks = (try? self.tasks(self.runView(run))) ?? [:]
            return tasks["s2"]?["state"] as? String == "exited"
        }, "\(tasks)")
        let task = tasks["s2"] ?? [:]
        XCTAssertFalse(task["reconciled_at"] is NSNull)
        XCTAssertEqual(task["exit_code"] as? Int, 0)
        XCTAssertEqual((task["result"] as? [String: Any])?["stdout"] as? String, "finished\n")
        let after = try self.runView(run)
        XCTAssertEqual(after["state"] as? String, "done", "the run's end stands")
        XCTAssertEqual(after["errors"] as? Int, 0)
    }
}
