import Foundation
import XCTest
@testable import CorralAgent

/// Tokens, the loopback default, and the refusal to listen openly without one.
final class AgentAuthTests: AgentTestCase {
    func testEveryCallNeedsTheToken() throws {
        let tokenFile = scratch.appendingPathComponent("token").path
        let token = "s3cret-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: tokenFile, contents: Data((token + "\n").utf8))
        let agent = try startAgent(["--token-file", tokenFile])
        let client = agent.client

        for path in ["/v1/jobs", "/", "/metrics", "/v1/jobs/j1"] {
            let none = try client.get(path)
            XCTAssertEqual(none.status, 401, path)
            XCTAssertEqual(none.errorCode, "unauthorized")
            XCTAssertEqual(try client.get(path, headers: ["Authorization": "Bearer wrong"]).status, 401, path)
            XCTAssertEqual(try client.get(path, headers: ["Authorization": "Bearer \(token)x"]).status, 401, path)
        }
        XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"]}"#).status, 401)
        XCTAssertEqual(try client.get("/healthz").status, 200, "liveness probes need no token")

        let bearer = ["Authorization": "Bearer \(token)"]
        XCTAssertEqual(try client.get("/v1/jobs", headers: bearer).status, 200)
        let created = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#, headers: bearer)
        XCTAssertEqual(created.status, 201)
        // The page takes the token once in the query and keeps it as a strict cookie.
        let page = try client.get("/?token=\(token)")
        XCTAssertEqual(page.status, 200)
        let cookie = try XCTUnwrap(page.headers["set-cookie"])
        XCTAssertTrue(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), cookie)
        let pair = String(cookie.split(separator: ";")[0])
        XCTAssertEqual(try client.get("/v1/jobs", headers: ["Cookie": pair]).status, 200)
        XCTAssertEqual(try client.get("/v1/jobs", headers: ["Cookie": "corral_token=nope"]).status, 401)
    }

    func testRefusesAnOpenAddressWithoutAToken() async throws {
        let result = try await corral(["agent", "--listen", "0.0.0.0:0", "--data-dir", dataDirectory])
        guard case .exited(125) = result.outcome else { return XCTFail("\(result.outcome)") }
        XCTAssertTrue(result.stderr.text.contains("without a token"), result.stderr.text)
    }

    func testLoopbackWithoutATokenAnswersLocalHostNamesOnly() throws {
        let agent = try startAgent()
        let client = agent.client
        XCTAssertEqual(try client.get("/v1/jobs").status, 200)
        let rebound = try client.get("/v1/jobs", headers: ["Host": "evil.example:7070"])
        XCTAssertEqual(rebound.status, 403)
        XCTAssertEqual(rebound.errorCode, "bad_host")
    }

    func testTokenComparison() {
        let check = TokenCheck("abc123")
        XCTAssertTrue(check.accepts("abc123"))
        XCTAssertFalse(check.accepts("abc124"))
        XCTAssertFalse(check.accepts("abc12"))
        XCTAssertFalse(check.accepts("abc1234"))
        XCTAssertFalse(check.accepts(""))
    }

    func testListenAddressParsing() throws {
        XCTAssertEqual(try ListenAddress(parsing: "127.0.0.1:7070"), ListenAddress(host: "127.0.0.1", port: 7070))
        XCTAssertEqual(try ListenAddress(parsing: "[::1]:80"), ListenAddress(host: "::1", port: 80))
        XCTAssertTrue(try ListenAddress(parsing: ":0").isLoopback)
        XCTAssertFalse(try ListenAddress(parsing: "0.0.0.0:7070").isLoopback)
        XCTAssertThrowsError(try ListenAddress(parsing: "7070"))
        XCTAssertThrowsError(try ListenAddress(parsing: "host:99999"))
    }
}
