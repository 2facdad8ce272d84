import CorralTestSupport
import Foundation
import XCTest

/// The page's read API: `GET /v1/runs` filtered and searched, and
/// `GET /v1/runs/{id}/tasks` paged, filtered and sorted by the server
/// without result bodies; every bad parameter refused at the edge with 400
/// and its name. The runs are written with SQL (`insertFakeRun`).
final class FleetQueryTests: FleetTestCase {
    func testBadQueryParametersAreRefusedWithTheirField() throws {
        let run = try insertFakeRun(hosts: 5, prefix: "bq", name: "bad-queries")
        let cases: [(String, String)] = [
            ("/v1/runs?state=bogus", "state"), ("/v1/runs?state=done,", "state"), ("/v1/runs?limit=0", "limit"),
            ("/v1/runs?limit=501", "limit"), ("/v1/runs?before=-1", "before"),
            ("/v1/runs?q=" + String(repeating: "a", count: 201), "q"), ("/v1/runs?q=a%0Ab", "q"), ("/v1/runs?colour=red", "colour"),
            ("/v1/runs/\(run)/tasks?sort=size", "sort"), ("/v1/runs/\(run)/tasks?state=running,nope", "state"),
            ("/v1/runs/\(run)/tasks?limit=1001", "limit"), ("/v1/runs/\(run)/tasks?limit=x", "limit"),
            ("/v1/runs/\(run)/tasks?after=zz", "after"), ("/v1/runs/\(run)/tasks?after=5:bad%20host", "after"),
            ("/v1/runs/\(run)/tasks?after=99999999999999999999:h", "after"),
            ("/v1/runs/\(run)/tasks?job=yes", "job"), ("/v1/runs/\(run)/tasks?q=%01", "q"), ("/v1/runs/\(run)/tasks?hosts=a", "hosts"),
        ]
        for (path, field) in cases {
            let (status, json) = try request("GET", path)
            XCTAssertEqual(status, 400, "\(path): \(json)")
            let error = json["error"] as? [String: Any]
            XCTAssertEqual(error?["field"] as? String, field, "\(path): \(json)")
            XCTAssertEqual(error?["code"] as? String, "bad_query", path)
        }
        XCTAssertEqual(try request("GET", "/v1/runs/99999/tasks").status, 404)
        XCTAssertEqual(try request("GET", "/v1/runs/abc/tasks").status, 404)
        XCTAssertEqual(try request("GET", "/v1/runs/\(run)/tasks?state=&q=&limit=3").status, 200, "empty filters are no filters")
    }

    func testTaskListPagesEveryHostOnceInEachOrderWithoutResults() throws {
        let run = try insertFakeRun(hosts: 40, prefix: "p", name: "paged")
        for sort in ["host", "state", "duration", "exit"] {
            var seen: [[String: Any]] = []
            var after: String?
            var pages = 0
            repeat {
                var path = "/v1/runs/\(run)/tasks?sort=\(sort)&limit=7"
                if let after { path += "&after=\(after)" }
                let (status, json) = try request("GET", path)
                XCTAssertEqual(status, 200, "\(path): \(json)")
                let tasks = json["tasks"] as? [[String: Any]] ?? []
                XCTAssertEqual(json["matched"] as? Int, 40)
                for task in tasks { XCTAssertNil(task["result"], "a task list carries no result bodies") }
                seen += tasks
                after = json["next"] as? String
                pages += 1
            } while after != nil && pages < 20
            let hosts = seen.compactMap { $0["host"] as? String }
            XCTAssertEqual(hosts.count, 40, sort)
            XCTAssertEqual(Set(hosts).count, 40, "every host exactly once (\(sort)): \(hosts)")
            XCTAssertEqual(pages, 6, "40 hosts in pages of 7 (\(sort))")
            let states = seen.map { $0["state"] as? String ?? "" }
            switch sort {
            case "host":
                XCTAssertEqual(hosts, hosts.sorted())
            case "state":
                // Errors first (exited 1, timed_out, lost), then running, waiting, not run, fine.
                XCTAssertEqual(seen.prefix(8).map { $0["error"] as? Bool }, Array(repeating: true, count: 8), "\(states)")
                XCTAssertEqual(Array(states[8..<14]), Array(repeating: "running", count: 6))
                XCTAssertEqual(Array(states[14..<16]), ["queued", "queued"])
                XCTAssertEqual(Set(states[16..<20]), ["cancelled", "undelivered"])
                XCTAssertEqual(Set(states[20...]), ["exited"])
            case "duration":
                XCTAssertEqual(Array(states.prefix(6)), Array(repeating: "running", count: 6), "running first")
                let claimed = seen.prefix(6).map { $0["claimed_at"] as? String ?? "" }
                XCTAssertEqual(claimed, claimed.sorted(), "the longest running first")
                let durations = seen.dropFirst(6).map { number($0["duration_s"]) }
                let known = durations.prefix { $0 != nil }.compactMap { $0 }
                XCTAssertEqual(known, known.sorted(by: >), "then the longest first")
                XCTAssertEqual(known.count, 20 + 4 + 2 + 2, "exited, timed out and cancelled have durations")
                XCTAssertTrue(durations.dropFirst(known.count).allSatisfy { $0 == nil }, "then none")
            default:
                let codes = seen.map { $0["exit_code"] as? Int }
                let known = codes.prefix { $0 != nil }.compactMap { $0 }
                XCTAssertEqual(known, known.sorted(by: >))
                XCTAssertEqual(known.count, 24)
            }
        }
    }

    func testTaskFiltersAndTheRunsCountsAddUp() throws {
        let run = try insertFakeRun(hosts: 40, prefix: "f", name: "filtered")
        func matched(_ query: String) throws -> (Int, [String]) {
            let (status, json) = try request("GET", "/v1/runs/\(run)/tasks?\(query)")
            XCTAssertEqual(status, 200, "\(query): \(json)")
            return (json["matched"] as? Int ?? -1, (json["tasks"] as? [[String: Any]] ?? []).compactMap { $0["host"] as? String })
        }
        XCTAssertEqual(try matched("state=errors").0, 8)
        XCTAssertEqual(try matched("state=running,queued").0, 8)
        XCTAssertEqual(try matched("state=ok").0, 20)
        XCTAssertEqual(try matched("state=active").0, 8)
        XCTAssertEqual(try matched("state=final").0, 32)
        XCTAssertEqual(try matched("state=errors,ok").0, 28)
        XCTAssertEqual(try matched("q=f001").1, (10...19).map { "f00\($0)" }, "a host name's part")
        XCTAssertEqual(try matched("q=SILENT").0, 2, "the note, case-insensitive")
        XCTAssertEqual(try matched("q=%25").0, 0, "% is literal")
        XCTAssertEqual(try matched("q=f_0").0, 0, "_ is literal")
        XCTAssertEqual(try matched("state=errors&q=f0013").1, ["f0013"])

        let (_, page) = try request("GET", "/v1/runs/\(run)/tasks?limit=1&job=1")
        let summary = try XCTUnwrap(page["run"] as? [String: Any])
        let counts = summary["counts"] as? [String: Int] ?? [:]
        XCTAssertEqual(counts.values.reduce(0, +), 40, "the counts add up to the hosts: \(counts)")
        XCTAssertEqual(summary["tasks"] as? Int, 40)
        XCTAssertEqual(summary["errors"] as? Int, 8)
        XCTAssertEqual(summary["failed_exits"] as? Int, 4)
        XCTAssertEqual(summary["command"] as? String, "echo hello\nsecond line")
        XCTAssertEqual(summary["timeout"] as? String, "60s")
        XCTAssertEqual((summary["job"] as? [String: Any])?["shell"] as? String, "echo hello\nsecond line", "job=1 adds the spec")
        let (_, plain) = try request("GET", "/v1/runs/\(run)/tasks?limit=1")
        XCTAssertNil((plain["run"] as? [String: Any])?["job"], "and only then")
        let running = try XCTUnwrap((try request("GET", "/v1/runs/\(run)/tasks?state=running&limit=1").json["tasks"] as? [[String: Any]])?.first)
        XCTAssertGreaterThan(number(running["elapsed_s"]) ?? 0, 60, "a running task's time so far: \(running)")
    }

    func testRunListFiltersAndSearch() throws {
        let run = try insertFakeRun(hosts: 10, prefix: "r", name: "with errors")
        try sql("""
            INSERT INTO run (name, job, target, max_concurrency, max_errors, request, state, finished_at)
            VALUES ('quiet one', '{"argv":["python3","-c","print(1)"]}', '{"all":true}', 1, 0, '{}', 'done', now())
            """)
        func names(_ query: String) throws -> [String] {
            let (status, json) = try request("GET", "/v1/runs?\(query)")
            XCTAssertEqual(status, 200, "\(query): \(json)")
            return (json["runs"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        }
        XCTAssertEqual(try names(""), ["quiet one", "with errors"])
        XCTAssertEqual(try names("q=ERRORS"), ["with errors"])
        XCTAssertEqual(try names("q=print(1"), ["quiet one"], "the command is searched")
        XCTAssertEqual(try names("q=hello"), ["with errors"])
        XCTAssertEqual(try names("state=errors"), ["with errors"])
        XCTAssertEqual(try names("state=done"), ["quiet one"])
        XCTAssertEqual(try names("state=active"), ["with errors"])
        XCTAssertEqual(try names("state=finished"), ["quiet one"])
        XCTAssertEqual(try names("state=done,running"), ["quiet one", "with errors"])
        // A list is any of its items, groups too.
        XCTAssertEqual(try names("state=active,finished"), ["quiet one", "with errors"])
        XCTAssertEqual(try names("state=errors,done"), ["quiet one", "with errors"])
        XCTAssertEqual(try names("state=errors,finished"), ["quiet one", "with errors"])
        XCTAssertEqual(try names("state=errors,errors"), ["with errors"])
        XCTAssertEqual(try names("limit=1"), ["quiet one"])
        let page = try request("GET", "/v1/runs?limit=1").json
        XCTAssertEqual(try names("before=\(page["next"] as? String ?? "")"), ["with errors"])
        let listed = try XCTUnwrap((try request("GET", "/v1/runs?q=python3").json["runs"] as? [[String: Any]])?.first)
        XCTAssertEqual(listed["command"] as? String, "python3 -c print(1)")
        XCTAssertNotNil(number(listed["duration_s"]))
        XCTAssertEqual(run, (try request("GET", "/v1/runs?state=errors").json["runs"] as? [[String: Any]])?.first?["id"] as? Int)
    }
}
