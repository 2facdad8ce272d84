import Foundation
import XCTest

extension AgentTestCase {
    /// Puts `count` final jobs (j2 … j(count+1); one in 50 exited 1, the
    /// rest 0) straight into the journal of this test's data directory,
    /// after an agent made it and ran j1 there, and stopped. For scale
    /// checks: submitting them through the API would take minutes.
    func fillJournal(jobs count: Int) throws {
        let fill = """
            import sqlite3, sys, time
            now = int(time.time() * 1000)
            count = int(sys.argv[2])
            db = sqlite3.connect(sys.argv[1])
            rows = []
            for n in range(2, count + 2):
                code = 1 if n % 50 == 0 else 0
                rows.append((n, 'j%d' % n, '{"argv":["echo","%d"]}' % n, 'name-%d' % n, 'echo job %d' % n, now, now, now, code))
            db.executemany("INSERT INTO jobs (seq, id, spec_json, name, command, state, run_id, submitted_ms, started_ms, finished_ms, exit_code, duration_s, result_json, result_form) VALUES (?, ?, ?, ?, ?, 'exited', 1, ?, ?, ?, ?, 1.0, '{}', 2)", rows)
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'jobs'", (count + 1,))
            db.commit()
            """
        let script = scratch.appendingPathComponent("fill.py").path
        try fill.write(toFile: script, atomically: true, encoding: .utf8)
        let filled = Process()
        filled.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        filled.arguments = [script, dataDirectory + "/journal.sqlite", "\(count)"]
        try filled.run()
        filled.waitUntilExit()
        XCTAssertEqual(filled.terminationStatus, 0, "filling the journal")
    }

    /// An agent that made the journal and ran j1, stopped: ready for `fillJournal`.
    func prepareJournal() throws {
        let agent = try startAgent()
        XCTAssertEqual(try agent.client.post("/v1/jobs", json: #"{"argv":["true"]}"#).status, 201)
        _ = try waitForFinal(agent.client, "j1")
        agent.terminate()
        XCTAssertNotNil(agent.waitForExit())
    }
}
