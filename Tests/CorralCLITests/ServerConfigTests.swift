import Foundation
import XCTest

/// `corral server --config FILE`: the file and the flags combine (a flag
/// wins), `--print-config` shows the result as a file that reads back, and
/// every mistake is an error naming the key and where it came from. None
/// of this needs the database: it is checked before any connection.
final class ServerConfigTests: CLITestCase {
    private func write(_ text: String, name: String = "server.toml") throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testFileAndFlagsCombineAndPrintConfigReadsBack() async throws {
        let file = try write("""
            db = "postgres://corral@db.internal/corral"
            agent-ttl = "45s"
            listen = "127.0.0.1:9000"
            log-format = "json"
            """)
        let result = try await corral("server", "--config", file, "--listen", "127.0.0.1:9100", "--print-config")
        XCTAssertEqual(exitCode(result), 0, result.stderr.text)
        let text = result.stdout.text
        for line in [
            "db = \"postgres://corral@db.internal/corral\"  # from the file",
            "agent-ttl = \"45s\"  # from the file",
            "listen = \"127.0.0.1:9100\"  # from --listen",
            "log-format = \"json\"  # from the file",
            "max-body = \"1MiB\"  # default",
            "# token-file = (not set)",
        ] {
            XCTAssertTrue(text.contains(line + "\n"), "missing \(line) in:\n\(text)")
        }
        let printed = try write(text, name: "printed.toml")
        let again = try await corral("server", "--config", printed, "--print-config")
        XCTAssertEqual(exitCode(again), 0, again.stderr.text)
        XCTAssertTrue(again.stdout.text.contains("listen = \"127.0.0.1:9100\"  # from the file\n"), again.stdout.text)
    }

    func testPrintConfigHidesTheDatabasePassword() async throws {
        let result = try await runner.run(spec(["server", "--db", "postgres://corral:s3cret@db.internal:5433/fleet?sslmode=require",
                                                "--print-config"]))
        XCTAssertEqual(exitCode(result), 0, result.stderr.text)
        XCTAssertTrue(result.stdout.text.contains("db = \"postgres://corral:***@db.internal:5433/fleet?sslmode=require\"  # from --db\n"),
                      result.stdout.text)
        XCTAssertFalse(result.stdout.text.contains("s3cret"))
    }

    func testMistakesAreErrorsNamingTheKeyBeforeAnyConnection() async throws {
        let cases: [(String, [String], String)] = [
            ("agent-ttl = \"soon\"\ndb = \"postgres://a@h/d\"", [], "case0.toml: agent-ttl expects"),
            ("agent-ttl = \"100ms\"\ndb = \"postgres://a@h/d\"", [], "--agent-ttl must be from 500ms to 1d"),
            ("db = \"mysql://a@h/d\"", [], "case2.toml: db: a database URL is postgres://"),
            ("listen = \"0.0.0.0:7080\"\ndb = \"postgres://a@h/d\"", [], "a token is required"),
            ("max-body = \"1TiB\"\ndb = \"postgres://a@h/d\"", [], "case4.toml: max-body expects a size from 1KiB to 64MiB"),
            ("log-level = \"loud\"\ndb = \"postgres://a@h/d\"", [], "case5.toml: log-level expects one of"),
            ("log-format = \"xml\"\ndb = \"postgres://a@h/d\"", [], "case6.toml: log-format expects text or json"),
            ("colour = \"blue\"", [], "unknown key \"colour\""),
            ("agent-ttl = \"30 s\"\ndb = \"postgres://a@h/d\"", [], "agent-ttl expects"),
            ("", [], "give the database"),
            ("db = \"postgres://a@h/d\"", ["--db-file", "/nonexistent/db-url"], "give --db or --db-file, not both"),
            ("db-file = \"/nonexistent/db-url\"", [], "cannot read /nonexistent/db-url"),
        ]
        for (index, (text, flags, message)) in cases.enumerated() {
            let file = try write(text, name: "case\(index).toml")
            let listen = text.contains("listen") ? [] : ["--listen", "127.0.0.1:0"]
            let result = try await runner.run(spec(["server", "--config", file] + flags + listen))
            XCTAssertNotEqual(exitCode(result), 0, "\(text): \(result.stdout.text)")
            XCTAssertTrue(result.stderr.text.contains(message), "\(text): expected \"\(message)\" in: \(result.stderr.text)")
        }
    }

    /// The example shipped with scripts/install reads as it is (given the
    /// database, as the systemd unit gives it).
    func testTheExampleConfigurationLoads() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = root.appendingPathComponent("packaging/server.toml").path
        let result = try await runner.run(spec(["server", "--config", example, "--db", "postgres://corral@localhost/corral", "--print-config"]))
        XCTAssertEqual(exitCode(result), 0, result.stderr.text)
        XCTAssertTrue(result.stdout.text.contains("agent-ttl = \"30s\"  # default\n"), result.stdout.text)
    }
}
