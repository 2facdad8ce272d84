import Corral
import CorralTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import XCTest

/// What the page and query tests share: runs written straight into the
/// test's database (hundreds of hosts without hundreds of agents), and the
/// browser driver (`Browser/fleet_page.py`, headless Chromium over the
/// DevTools protocol).
extension FleetTestCase {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// One statement on this test's own database.
    func sql(_ statement: String) throws {
        let url = databaseURL
        let failure = Mutex<Error?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await FleetTestCase.admin(url, statement) } catch { failure.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// A run over `hosts` fake agents named `<prefix>0001…`, written with
    /// SQL (the agents are registered but no process runs them; their
    /// `seen_at` is a day ahead, so the reaper leaves them up). The tasks
    /// cycle through states by ordinal i, i mod 20: 0–9 exited 0, 10–11
    /// exited 1, 12 timed_out, 13 lost, 14 undelivered, 15 cancelled, 16–18
    /// running, 19 queued. Final ones carry a result of `resultBytes` of
    /// stdout, as a real result would. Returns the run's id.
    func insertFakeRun(hosts: Int, prefix: String, name: String, resultBytes: Int = 100) throws -> Int {
        try sql("""
            INSERT INTO agent (name, labels, version, seen_at, state)
            SELECT '\(prefix)' || lpad(i::text, 4, '0'),
                   jsonb_build_object('role', '\(prefix)', 'half', CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END),
                   'fake', now() + interval '1 day', 'up'
              FROM generate_series(1, \(hosts)) i
            """)
        try sql("""
            INSERT INTO run (name, job, target, max_concurrency, max_errors, request)
            VALUES ('\(name)', '{"shell":"echo hello\\nsecond line","timeout":"60s"}', '{"labels":{"role":"\(prefix)"}}',
                    \(hosts), \(hosts), '{}')
            """)
        try sql("""
            INSERT INTO task (run_id, agent_id, host, ordinal, state, attempt_id, exit_code, signal, duration_s, note, result,
                              queued_at, claimed_at, finished_at)
            SELECT r.run_id, a.agent_id, a.name, x.i, x.state,
                   CASE WHEN x.state IN ('queued', 'undelivered') THEN NULL ELSE gen_random_uuid() END,
                   CASE WHEN x.m < 10 THEN 0 WHEN x.m < 12 THEN 1 END,
                   CASE WHEN x.state = 'timed_out' THEN 'TERM' END,
                   CASE WHEN x.state IN ('exited', 'timed_out', 'cancelled') THEN 0.5 + (x.i % 97) / 10.0 END,
                   CASE x.state WHEN 'lost' THEN 'the agent went silent past the TTL while the task ran; it is not run again'
                                WHEN 'undelivered' THEN 'the agent was down when the task was due'
                                WHEN 'cancelled' THEN 'cancelled before it started' END,
                   CASE WHEN x.state IN ('exited', 'timed_out', 'cancelled')
                        THEN json_build_object('outcome', x.state, 'stdout', repeat('x', \(resultBytes)))::text END,
                   now() - interval '10 minutes',
                   CASE WHEN x.state NOT IN ('queued', 'undelivered') THEN now() - interval '9 minutes' + x.i * interval '100 ms' END,
                   CASE WHEN x.state NOT IN ('queued', 'running') THEN now() END
              FROM (SELECT i, i % 20 AS m,
                           CASE WHEN i % 20 < 12 THEN 'exited' WHEN i % 20 = 12 THEN 'timed_out' WHEN i % 20 = 13 THEN 'lost'
                                WHEN i % 20 = 14 THEN 'undelivered' WHEN i % 20 = 15 THEN 'cancelled'
                                WHEN i % 20 < 19 THEN 'running' ELSE 'queued' END AS state
                      FROM generate_series(1, \(hosts)) i) x
              JOIN agent a ON a.name = '\(prefix)' || lpad(x.i::text, 4, '0')
              JOIN run r ON r.name = '\(name)'
            """)
        let list = try request("GET", "/v1/runs?q=\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name)")
        guard let id = (list.json["runs"] as? [[String: Any]])?.first(where: { $0["name"] as? String == name })?["id"] as? Int else {
            throw FleetTestFailure("the fake run \(name) is not listed: \(list)")
        }
        return id
    }

    /// Skips the test, loudly, when Debian's chromium is not installed.
    func requireChromium() throws {
        if let message = EndToEnd.chromiumMissing(name) { throw XCTSkip(message) }
    }

    /// Runs a scenario of `Browser/fleet_page.py` against the server (or
    /// another one on `port`); its report. Screenshots are kept under
    /// `.build/test-artifacts/fleet-page-<scenario>-<step>.png`.
    func pageScenario(_ scenario: String, _ arguments: [String], port: UInt16? = nil,
                      file: StaticString = #filePath, line: UInt = #line) async throws -> [String: Any] {
        let prefix = try EndToEnd.artifacts(in: FleetTestCase.repositoryRoot).appendingPathComponent("fleet-page-\(scenario)").path
        let driver = FleetTestCase.repositoryRoot.appendingPathComponent("Tests/CorralFleetTests/Browser/fleet_page.py").path
        let result = try await EndToEnd.runDriver(driver, ["http://127.0.0.1:\(port ?? server.port)/", prefix, scenario] + arguments,
                                                  runner: runner, marker: marker, timeout: .seconds(300))
        let (report, problems) = EndToEnd.pageReport(result, "page scenario \(scenario)")
        for problem in problems { XCTFail(problem, file: file, line: line) }
        guard let report else { throw FleetTestFailure("scenario \(scenario) failed") }
        for shot in report["screenshots"] as? [String] ?? [] {
            let size = (try? FileManager.default.attributesOfItem(atPath: shot))?[.size] as? Int ?? 0
            XCTAssertGreaterThan(size, 10_000, "screenshot at \(shot)", file: file, line: line)
            print("fleet page screenshot: \(shot)")
        }
        return report
    }
}

/// A JSON number as a Double, however JSONSerialization typed it (an
/// integral 1.0 comes back as an integer).
func number(_ value: Any?) -> Double? {
    if let value = value as? NSNumber { return value.doubleValue }
    if let value = value as? Double { return value }
    if let value = value as? Int { return Double(value) }
    return nil
}
