import Foundation
import XCTest
import CorralTestSupport
@testable import CorralAgent

/// The Host check against DNS rebinding, and `--listen`'s idea of loopback:
/// both decided by parsing the address, never by a prefix of a name.
final class AgentHostTests: AgentTestCase {
    static let foreignHosts = [
        "127.attacker.com", "127.attacker.com:7070", "127.0.0.1.attacker.example", "127.0.0.1.attacker.example:80",
        "127.0.0.1@evil.com", "localhost.evil.com", "localhost.evil.com:7070", "evil.example:7070",
    ]
    static let loopbackHosts = [
        "127.0.0.1", "127.0.0.1:7070", "127.1.2.3", "127.1.2.3:80", "[::1]", "[::1]:7070", "localhost", "localhost:7070",
    ]

    func testHostParserTable() {
        let table: [(String, Bool)] = [
            ("127.0.0.1", true), ("127.0.0.1:7070", true), ("127.1.2.3", true), ("127.255.255.255:65535", true),
            ("[::1]", true), ("[::1]:80", true), ("[0:0:0:0:0:0:0:1]:80", true), ("localhost", true), ("LocalHost:1", true),
            ("127.attacker.com", false), ("127.0.0.1.attacker.example", false), ("127.0.0.1@evil.com", false),
            ("user@127.0.0.1", false), ("localhost.evil.com", false), ("localhost.", false), ("evil.com", false),
            ("127.1", false), ("127.0.0.01", false), ("127.0.0.1.", false), ("0x7f.0.0.1", false), ("2130706433", false),
            ("128.0.0.1", false), ("10.0.0.1", false), ("0.0.0.0", false), ("", false), (":7070", false),
            ("127.0.0.1:", false), ("127.0.0.1:65536", false), ("127.0.0.1:80:80", false), ("127.0.0.1:8a", false),
            ("127.0.0.1:+80", false), ("127.0.0.1 ", false), ("127.0.0.1\u{0}.evil.com", false),
            ("::1", false), ("[::1", false), ("[::1]x", false), ("[::1]:", false), ("[::2]", false), ("[::]", false),
            ("[::ffff:127.0.0.1]", false), ("[fe80::1%lo]", false), ("[localhost]", false), ("[127.0.0.1]", false),
        ]
        for (authority, expected) in table {
            XCTAssertEqual(LoopbackHost.isLoopback(authority: authority), expected, "Host: \(authority)")
        }
        for host in ["127.0.0.1", "127.9.8.7", "::1", "localhost"] {
            XCTAssertTrue(LoopbackHost.isLoopback(host: host), host)
        }
        for host in ["127.attacker.com", "127.0.0.1.attacker.example", "localhost.evil.com", "::2", "0.0.0.0", "[::1]"] {
            XCTAssertFalse(LoopbackHost.isLoopback(host: host), host)
        }
    }

    func testListenLoopbackIsDecidedByAddress() throws {
        XCTAssertTrue(try ListenAddress(parsing: "127.1.2.3:7070").isLoopback)
        XCTAssertTrue(try ListenAddress(parsing: "[::1]:7070").isLoopback)
        XCTAssertTrue(try ListenAddress(parsing: "localhost:7070").isLoopback)
        XCTAssertFalse(try ListenAddress(parsing: "127.evil.com:7070").isLoopback)
        XCTAssertFalse(try ListenAddress(parsing: "127.0.0.1.attacker.example:7070").isLoopback)
        XCTAssertFalse(try ListenAddress(parsing: "localhost.evil.com:7070").isLoopback)
    }

    func testListeningOnA127NameNeedsAToken() async throws {
        let result = try await corral(["agent", "--listen", "127.attacker.example:0", "--data-dir", dataDirectory])
        guard case .exited(125) = result.outcome else { return XCTFail("\(result.outcome) \(result.stderr.text)") }
        XCTAssertTrue(result.stderr.text.contains("without a token"), result.stderr.text)
    }

    func testForeignHostsAreRefusedAndLoopbackOnesAccepted() throws {
        let agent = try startAgent()
        let client = agent.client
        for host in AgentHostTests.foreignHosts {
            let read = try client.get("/v1/jobs", headers: ["Host": host])
            XCTAssertEqual(read.status, 403, "Host: \(host)")
            XCTAssertEqual(read.errorCode, "bad_host", "Host: \(host)")
            let submit = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#, headers: ["Host": host])
            XCTAssertEqual(submit.status, 403, "POST with Host: \(host): \(submit.text)")
            XCTAssertEqual(try client.get("/", headers: ["Host": host]).status, 403, "the page with Host: \(host)")
        }
        XCTAssertEqual((try client.get("/v1/jobs").json["jobs"] as? [Any])?.count, 0, "no foreign Host created a job")
        for host in AgentHostTests.loopbackHosts {
            XCTAssertEqual(try client.get("/v1/jobs", headers: ["Host": host]).status, 200, "Host: \(host)")
        }
        let created = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#, headers: ["Host": "127.1.2.3:9"])
        XCTAssertEqual(created.status, 201, created.text)

        // No Host at all, HTTP/1.1 and HTTP/1.0: not a localhost name either.
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            let text = try HTTPClient.raw(port: agent.port, Array("GET /v1/jobs \(version)\r\nConnection: close\r\n\r\n".utf8))
            XCTAssertTrue(text.hasPrefix("HTTP/1.") && text.contains(" 403 "), "\(version) without Host: \(text.prefix(200))")
            XCTAssertTrue(text.contains("bad_host"), "\(version) without Host: \(text.prefix(300))")
        }
    }
}
