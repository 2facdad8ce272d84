import CorralTestSupport
import Foundation
import XCTest

/// The server's start-up and its door: migrations that servers started
/// together apply once, and the token.
final class FleetServerTests: FleetTestCase {
    func testServersStartedTogetherOnAFreshDatabaseBothServeIt() throws {
        let name = "corral_test_" + UUID().uuidString.prefix(8).lowercased()
        try awaitAdmin("CREATE DATABASE \(name)")
        defer { try? awaitAdmin("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        let url = databaseURL.replacingOccurrences(of: "/" + databaseName, with: "/" + name)
        let arguments = ["server", "--db", url, "--listen", "127.0.0.1:0", "--log-level", "notice"]
        let first = try launch(arguments, directory: scratch.path)
        let second = try launch(arguments, directory: scratch.path)
        XCTAssertTrue(first.waitUntilListening(), first.output)
        XCTAssertTrue(second.waitUntilListening(), second.output)
        // Exactly one of them applied the migration; the other found it done.
        let applied = [first.output, second.output].map { $0.components(separatedBy: "database migrated").count - 1 }
        XCTAssertEqual(applied.filter { $0 > 0 }.count, 1, "\(first.output)\n---\n\(second.output)")
        for server in [first, second] {
            let answer = try request("GET", "/v1/agents", port: server.port)
            XCTAssertEqual(answer.status, 200)
            XCTAssertEqual((answer.json["agents"] as? [Any])?.count, 0)
        }
    }

    /// A database that refuses the login (no such role, no such database)
    /// ends a server's start at once with the server's own reason, and an
    /// agent's log says it, instead of "no answer" after a wait.
    func testAWrongRoleOrDatabaseIsNamedAtOnce() throws {
        // postgres://USER[:PASSWORD]@…: another user.
        let userStart = databaseURL.range(of: "://")!.upperBound
        let at = databaseURL.range(of: "@", range: userStart..<databaseURL.endIndex)!.lowerBound
        let wrongRole = databaseURL.replacingCharacters(in: userStart..<at, with: "corral_no_such_role")
        let missing = databaseURL.replacingOccurrences(of: "/" + databaseName, with: "/corral_no_such_database")
        for (url, reason) in [(wrongRole, "does not exist"), (missing, #"database "corral_no_such_database" does not exist"#)] {
            let started = ContinuousClock.now
            let server = try launch(["server", "--db", url, "--listen", "127.0.0.1:0"], directory: scratch.path)
            let result = server.waitForExit(upTo: .seconds(60))
            XCTAssertNotNil(result, "a server that cannot log in must not start")
            XCTAssertTrue(server.output.contains("the database server said") && server.output.contains(reason), server.output)
            // Not the 30 s of waiting for an answer: a generous bound still.
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(20), server.output)
        }
        let agent = try startAgent("nologin", database: missing, wait: false)
        XCTAssertTrue(waitUntil { agent.output.contains(#"database "corral_no_such_database" does not exist"#) }, agent.output)
    }

    func testTokenIsRequiredAndOffLoopbackWithoutOneTheServerRefusesToStart() throws {
        let tokenFile = scratch.appendingPathComponent("token").path
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let guarded = try launch(["server", "--db", databaseURL, "--listen", "127.0.0.1:0", "--token-file", tokenFile],
                                 directory: scratch.path)
        XCTAssertTrue(guarded.waitUntilListening(), guarded.output)
        XCTAssertEqual(try request("GET", "/v1/runs", port: guarded.port).status, 401)
        XCTAssertEqual(try request("GET", "/v1/runs", port: guarded.port, headers: ["Authorization": "Bearer wrong"]).status, 401)
        XCTAssertEqual(try request("GET", "/v1/runs", port: guarded.port, headers: ["Authorization": "Bearer s3cret-token"]).status, 200)
        XCTAssertEqual(try request("GET", "/healthz", port: guarded.port).status, 200)

        let open = try launch(["server", "--db", databaseURL, "--listen", "0.0.0.0:0"], directory: scratch.path)
        let result = open.waitForExit(upTo: .seconds(30))
        XCTAssertNotNil(result, "a server off loopback without a token must not start")
        XCTAssertTrue(open.output.contains("a token is required"), open.output)
        // Without a token on loopback, a rebound DNS name is refused.
        XCTAssertEqual(try request("GET", "/v1/runs", headers: ["Host": "evil.example:80"]).status, 403)
    }
}
