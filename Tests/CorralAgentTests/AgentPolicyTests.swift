import Foundation
import XCTest

/// Who a job may run as, and how long finished jobs are kept.
final class AgentPolicyTests: AgentTestCase {
    func testUserOnlyFromTheAllowList() throws {
        try XCTSkipUnless(getuid() == 0, "switching users needs root")
        let agent = try startAgent(["--allow-user", "nobody"])
        let client = agent.client
        let refused = try client.post("/v1/jobs", json: #"{"argv":["id","-un"],"user":"daemon"}"#)
        XCTAssertEqual(refused.status, 403, refused.text)
        XCTAssertEqual(refused.errorCode, "user_not_allowed")
        XCTAssertEqual((refused.json["error"] as? [String: Any])?["field"] as? String, "user")
        let groupOnly = try client.post("/v1/jobs", json: #"{"argv":["id","-gn"],"group":"nogroup"}"#)
        XCTAssertEqual(groupOnly.status, 403, groupOnly.text)

        let allowed = try client.post("/v1/jobs", json: #"{"argv":["id","-un"],"user":"nobody","cwd":"/"}"#)
        XCTAssertEqual(allowed.status, 201, allowed.text)
        let job = try waitForFinal(client, try XCTUnwrap(allowed.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "nobody\n", "\(job)")
    }

    func testRetentionKeepsTheNewestFinishedJobs() throws {
        let first = try startAgent()
        var ids: [String] = []
        for index in 0..<4 {
            let id = try XCTUnwrap(try first.client.post("/v1/jobs", json: #"{"argv":["echo","\#(index)"]}"#).json["id"] as? String)
            _ = try waitForFinal(first.client, id)
            ids.append(id)
        }
        first.terminate()
        XCTAssertNotNil(first.waitForExit())

        let pruned = try startAgent(["--keep-jobs", "2"])
        XCTAssertTrue(waitUntil {
            ((try? pruned.client.get("/v1/jobs").json["jobs"] as? [[String: Any]]) ?? nil)?.compactMap { $0["id"] as? String }
                == [ids[3], ids[2]]
        })
        XCTAssertEqual(try pruned.client.get("/v1/jobs/\(ids[0])").status, 404)
        XCTAssertEqual(try pruned.client.get("/v1/jobs/\(ids[0])/output").status, 404)
    }
}
