import CorralTestSupport
import Foundation
import XCTest

/// `POST /v1/runs/{id}/rerun`: a new run of the same job on the failed,
/// lost, named or all hosts of a run.
final class FleetRerunTests: FleetTestCase {
    func testRerunOfTheFailedHostsRunsTheSameJobThereOnly() throws {
        for name in ["r1", "r2", "r3", "r4"] { try startAgent(name) }
        // The job fails where its host's directory holds `fail-here`.
        for name in ["r2", "r4"] {
            _ = FileManager.default.createFile(atPath: scratch.appendingPathComponent("\(name)/fail-here").path, contents: Data())
        }
        let job = #"{"shell":"echo run >> ran.txt; test -e fail-here && exit 3; echo ok","timeout":"30s"}"#
        let first = try createRun(#"{"name":"deploy","target":{"all":true},"job":\#(job),"max_concurrency":"50%"}"#)
        let view = try waitForRun(first)
        XCTAssertEqual(view["errors"] as? Int, 2, "\(view)")

        // The hosts that failed, and the job, window and budget asked for.
        let (status, rerun) = try request("POST", "/v1/runs/\(first)/rerun", json: #"{"hosts":"failed"}"#)
        XCTAssertEqual(status, 201, "\(rerun)")
        let second = rerun["id"] as? Int ?? 0
        XCTAssertEqual(rerun["rerun_of"] as? Int, first)
        XCTAssertEqual(rerun["name"] as? String, "deploy (re-run of #\(first): failed)")
        XCTAssertEqual(rerun["max_concurrency"] as? Int, 1, "50% of the 2 hosts it re-runs on")
        XCTAssertEqual(rerun["target"] as? [String: [String]], ["hosts": ["r2", "r4"]], "frozen by name")
        XCTAssertEqual(rerun["job"] as? NSDictionary, view["job"] as? NSDictionary)
        let again = try waitForRun(second)
        XCTAssertEqual(Set(tasks(again).keys), ["r2", "r4"])
        for (host, task) in tasks(again) { XCTAssertEqual(task["exit_code"] as? Int, 3, host) }
        for (name, runs) in [("r1", "run\n"), ("r2", "run\nrun\n"), ("r3", "run\n"), ("r4", "run\nrun\n")] {
            let ran = try String(contentsOfFile: scratch.appendingPathComponent("\(name)/ran.txt").path, encoding: .utf8)
            XCTAssertEqual(ran, runs, name)
        }

        // Named hosts, with an Idempotency-Key: replayed, the same run.
        let named = try request("POST", "/v1/runs/\(first)/rerun", json: #"{"hosts":["r3"],"name":"just r3"}"#,
                                headers: ["Idempotency-Key": "again-r3"])
        XCTAssertEqual(named.status, 201, "\(named.json)")
        XCTAssertEqual(named.json["name"] as? String, "just r3")
        let replay = try request("POST", "/v1/runs/\(first)/rerun", json: #"{"hosts":["r3"],"name":"just r3"}"#,
                                 headers: ["Idempotency-Key": "again-r3"])
        XCTAssertEqual(replay.status, 200)
        XCTAssertEqual(replay.json["id"] as? Int, named.json["id"] as? Int)
        XCTAssertEqual(Set(tasks(try waitForRun(named.json["id"] as? Int ?? 0)).keys), ["r3"])

        // Refused at the edge, naming the field; nothing created.
        let refused: [(String, String, Int, String)] = [
            ("/v1/runs/\(first)/rerun", #"{"hosts":"lost"}"#, 400, "no_hosts"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":["r1","elsewhere"]}"#, 400, "unknown_hosts"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":"some"}"#, 400, "bad_request"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":[]}"#, 400, "bad_request"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":["r1","r1"]}"#, 400, "bad_request"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":"all","job":{"shell":"true"}}"#, 400, "bad_request"),
            ("/v1/runs/\(first)/rerun", #"{"hosts":"all""#, 400, "bad_json"),
            ("/v1/runs/999999/rerun", #"{"hosts":"all"}"#, 404, "not_found"),
        ]
        let before = try request("GET", "/v1/runs").json["runs"] as? [Any]
        for (path, body, code, error) in refused {
            let (status, json) = try request("POST", path, json: body)
            XCTAssertEqual(status, code, body)
            XCTAssertEqual((json["error"] as? [String: Any])?["code"] as? String, error, "\(body): \(json)")
        }
        XCTAssertEqual((try request("GET", "/v1/runs").json["runs"] as? [Any])?.count, before?.count, "nothing created")
    }

    func testRerunOfTheLostHostsTakesTheUndeliveredToo() throws {
        try startAgent("l1")
        let gone = try startAgent("l2")
        gone.signal(SIGTERM)
        XCTAssertNotNil(gone.waitForExit())
        XCTAssertTrue(waitUntil { self.agentState("l2") == "down" })
        let first = try createRun(#"{"target":{"all":true},"job":{"shell":"true"}}"#)
        XCTAssertEqual(tasks(try waitForRun(first))["l2"]?["state"] as? String, "undelivered")
        try startAgent("l2")
        let (status, rerun) = try request("POST", "/v1/runs/\(first)/rerun", json: #"{"hosts":"lost"}"#)
        XCTAssertEqual(status, 201, "\(rerun)")
        let view = try waitForRun(rerun["id"] as? Int ?? 0)
        XCTAssertEqual(tasks(view).keys.sorted(), ["l2"])
        XCTAssertEqual(tasks(view)["l2"]?["state"] as? String, "exited", "\(view)")
    }
}
