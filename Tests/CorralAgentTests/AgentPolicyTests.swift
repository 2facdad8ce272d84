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

/// `group` has an allow-list of its own: with `--allow-user nobody` alone,
/// only nobody's primary group; `--allow-group` adds others.
final class AgentGroupPolicyTests: AgentTestCase {
    func testGroupOnlyTheUsersPrimaryGroupOrFromTheAllowList() throws {
        try XCTSkipUnless(getuid() == 0, "switching users needs root")
        guard let shadow = getgrnam("shadow")?.pointee.gr_gid, let nobody = getpwnam("nobody")?.pointee else {
            throw XCTSkip("this system has no shadow group or no nobody user")
        }
        let primary = String(cString: getgrgid(nobody.pw_gid).pointee.gr_name)
        let agent = try startAgent(["--allow-user", "nobody"])
        let client = agent.client
        for group in [#""shadow""#, "\(shadow)"] {
            let refused = try client.post("/v1/jobs", json: #"{"argv":["cat","/etc/shadow"],"user":"nobody","group":\#(group),"cwd":"/"}"#)
            XCTAssertEqual(refused.status, 403, "group \(group): \(refused.text)")
            XCTAssertEqual(refused.errorCode, "group_not_allowed")
            XCTAssertEqual((refused.json["error"] as? [String: Any])?["field"] as? String, "group")
        }
        // A numeric user is the same user: nobody's uid with shadow is refused too.
        let byUID = try client.post("/v1/jobs", json: #"{"argv":["id"],"user":\#(nobody.pw_uid),"group":"shadow","cwd":"/"}"#)
        XCTAssertEqual(byUID.status, 403, byUID.text)
        XCTAssertEqual((try client.get("/v1/jobs").json["jobs"] as? [Any])?.count, 0, "a refused spec made no job")

        let own = try client.post("/v1/jobs", json: #"{"argv":["id","-gn"],"user":"nobody","group":"\#(primary)","cwd":"/"}"#)
        XCTAssertEqual(own.status, 201, own.text)
        let ownJob = try waitForFinal(client, try XCTUnwrap(own.json["id"] as? String))
        XCTAssertEqual((ownJob["result"] as? [String: Any])?["stdout"] as? String, "\(primary)\n", "\(ownJob)")
        agent.terminate()
        XCTAssertNotNil(agent.waitForExit())

        let widened = try startAgent(["--allow-user", "nobody", "--allow-group", "shadow"])
        let allowed = try widened.client.post("/v1/jobs", json: #"{"argv":["id","-gn"],"user":"nobody","group":"shadow","cwd":"/"}"#)
        XCTAssertEqual(allowed.status, 201, allowed.text)
        let job = try waitForFinal(widened.client, try XCTUnwrap(allowed.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "shadow\n", "\(job)")
        // Still only nobody may be named.
        let otherUser = try widened.client.post("/v1/jobs", json: #"{"argv":["id"],"user":"daemon","group":"shadow"}"#)
        XCTAssertEqual(otherUser.status, 403, otherUser.text)
    }
}
