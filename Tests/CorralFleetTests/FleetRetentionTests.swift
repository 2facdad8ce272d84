import CorralTestSupport
import Foundation
import XCTest

/// Retention: a day's output is one partition, dropped whole once the day
/// is older than `--keep-days`, with that day's finished runs; a day with
/// a run still unfinished is kept whole.
final class FleetRetentionTests: FleetTestCase {
    func testOldDaysAreDroppedWholeAndUnfinishedDaysKept() throws {
        try startAgent("k1")
        let old = try createRun(#"{"target":{"all":true},"job":{"shell":"echo old output","timeout":"30s"}}"#)
        _ = try waitForRun(old)
        XCTAssertEqual(try output(old, "k1")["output"] as? String, "old output\n")
        let unfinished = try createRun(#"{"target":{"all":true},"job":{"shell":"echo still; sleep 300","timeout":"10m"}}"#)
        XCTAssertTrue(waitUntil { (try? self.output(unfinished, "k1")["output"] as? String) == "still\n" })
        let recent = try createRun(#"{"target":{"all":true},"job":{"shell":"echo recent","timeout":"30s"}}"#)
        _ = try waitForRun(recent)

        // Three days ago for the first run, two for the unfinished one:
        // their rows and their output move to those days' partitions.
        for (run, days) in [(old, 3), (unfinished, 2)] {
            try awaitSQL("""
                DO $$ BEGIN
                  PERFORM fleet_output_partition((now() AT TIME ZONE 'UTC')::date - \(days));
                  UPDATE run SET day = (now() AT TIME ZONE 'UTC')::date - \(days), created_at = created_at - interval '\(days) days' WHERE run_id = \(run);
                  UPDATE task_output SET day = (now() AT TIME ZONE 'UTC')::date - \(days) WHERE run_id = \(run);
                END $$
                """)
        }
        XCTAssertEqual(try output(old, "k1")["output"] as? String, "old output\n", "the output moved with its run")
        try awaitSQL(Self.partitionExists(daysAgo: 3, true))

        // A server started with --keep-days 1 does its upkeep at start.
        server.signal(SIGTERM)
        XCTAssertNotNil(server.waitForExit())
        try restartServer(["--keep-days", "1"])
        XCTAssertTrue(waitUntil { (try? self.request("GET", "/v1/runs/\(old)").status) == 404 }, "the old run is deleted")
        try awaitSQL(Self.partitionExists(daysAgo: 3, false))
        try awaitSQL(Self.partitionExists(daysAgo: 2, true))
        XCTAssertEqual(try request("GET", "/v1/runs/\(unfinished)").status, 200, "a day with an unfinished run is kept")
        XCTAssertEqual(try output(unfinished, "k1")["output"] as? String, "still\n")
        XCTAssertEqual(try output(recent, "k1")["output"] as? String, "recent\n")
        XCTAssertEqual(try request("GET", "/v1/runs/\(recent)").status, 200)
        XCTAssertEqual(try request("DELETE", "/v1/runs/\(unfinished)").status, 202)
        _ = try waitForRun(unfinished)
    }

    /// A statement that fails unless the output partition of that day
    /// exists (or, with false, does not).
    private static func partitionExists(daysAgo: Int, _ expected: Bool) -> String {
        """
        DO $$ BEGIN
          IF (to_regclass('task_output_' || to_char((now() AT TIME ZONE 'UTC')::date - \(daysAgo), 'YYYYMMDD')) IS NOT NULL) <> \(expected) THEN
            RAISE EXCEPTION 'the output partition of % days ago should \(expected ? "" : "not ")exist', \(daysAgo);
          END IF;
        END $$
        """
    }
}
