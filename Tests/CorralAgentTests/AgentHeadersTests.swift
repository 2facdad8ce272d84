import CorralTestSupport
import Foundation
import XCTest
@testable import CorralAgent

/// The headers every response carries, and 405 for a wrong method.
final class AgentHeadersTests: AgentTestCase {
    func testSHA256KnownAnswers() {
        func hex(_ text: String) -> String { SHA256.digest(Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(hex(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testEveryResponseCarriesTheSecurityHeaders() throws {
        let agent = try startAgent()
        let client = agent.client
        let page = try client.get("/")
        XCTAssertEqual(page.status, 200)
        let responses: [(String, HTTPClient.Response)] = [
            ("/", page), ("/v1/jobs", try client.get("/v1/jobs")), ("/healthz", try client.get("/healthz")),
            ("/metrics", try client.get("/metrics")), ("404", try client.get("/nowhere")),
            ("404 job", try client.get("/v1/jobs/j999")), ("403", try client.get("/", headers: ["Host": "evil.example"])),
            ("405", try client.request("PUT", "/v1/jobs")),
            ("415", try client.post("/v1/jobs", json: "{}", headers: ["Content-Type": "text/plain"])),
        ]
        for (what, response) in responses {
            let policy = response.headers["content-security-policy"] ?? ""
            XCTAssertTrue(policy.contains("frame-ancestors 'none'"), "\(what): \(policy)")
            XCTAssertFalse(policy.contains("unsafe-inline"), "\(what): \(policy)")
            XCTAssertEqual(response.headers["x-content-type-options"], "nosniff", what)
            XCTAssertEqual(response.headers["referrer-policy"], "no-referrer", what)
        }
        // The policy admits exactly the script and the style served, by hash.
        let policy = try XCTUnwrap(page.headers["content-security-policy"])
        for element in ["script", "style"] {
            let bodies = ContentSecurityPolicy.inlineElements(element, in: page.text)
            XCTAssertEqual(bodies.count, 1, element)
            let hash = Data(SHA256.digest(Array(bodies[0].utf8))).base64EncodedString()
            XCTAssertTrue(policy.contains("\(element)-src 'sha256-\(hash)'"), "\(element): \(policy)")
        }
        XCTAssertFalse(page.text.contains(" style=\""), "an inline style attribute would be blocked by the policy")
    }

    func testWrongMethodOnAKnownPathGets405WithAllow() throws {
        let agent = try startAgent()
        let client = agent.client
        let cases: [(String, String, String)] = [
            ("PUT", "/v1/jobs", "GET, POST"), ("HEAD", "/", "GET"), ("POST", "/", "GET"), ("DELETE", "/healthz", "GET"),
            ("PATCH", "/v1/jobs/j1", "DELETE, GET"), ("POST", "/v1/jobs/j1/output", "GET"), ("PUT", "/v1/jobs/j7/events", "GET"),
        ]
        for (method, path, allowed) in cases {
            let response = try client.request(method, path)
            XCTAssertEqual(response.status, 405, "\(method) \(path)")
            XCTAssertEqual(response.headers["allow"], allowed, "\(method) \(path)")
            if method != "HEAD" { XCTAssertEqual(response.errorCode, "method_not_allowed", "\(method) \(path)") }
        }
        XCTAssertEqual(try client.request("PUT", "/v1/nothing").status, 404)
        XCTAssertEqual(try client.request("GET", "/v1/jobs/j1/nothing").status, 404)
    }
}
