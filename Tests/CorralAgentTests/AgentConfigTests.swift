import Foundation
import XCTest

/// `corral agent --config FILE`: the file and the flags combine (a flag
/// wins), `--print-config` shows the result as a file that reads back, and
/// every mistake in the file is an error naming the key.
final class AgentConfigTests: AgentTestCase {
    private func write(_ text: String, name: String = "agent.toml") throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testFileAndFlagsCombineAndPrintConfigShowsWhereEachCameFrom() async throws {
        let file = try write("""
            max-jobs = 3
            keep-for = "2d"
            max-output = 4096
            allow-group = ["wheel", "staff"]
            shutdown-grace = "5s"
            """)
        let result = try await corral(["agent", "--config", file, "--max-jobs", "5", "--data-dir", dataDirectory, "--print-config"])
        guard case .exited(0) = result.outcome else { return XCTFail("\(result.outcome) \(result.stderr.text)") }
        let text = result.stdout.text
        for line in [
            "max-jobs = 5  # from --max-jobs",
            "keep-for = \"2d\"  # from the file",
            "max-output = \"4096\"  # from the file",
            "allow-group = [\"wheel\", \"staff\"]  # from the file",
            "shutdown-grace = \"5s\"  # from the file",
            "max-queued = 10000  # default",
            "listen = \"127.0.0.1:7070\"  # default",
            "data-dir = \(quoted(dataDirectory))  # from --data-dir",
            "# token-file = (not set)",
        ] {
            XCTAssertTrue(text.contains(line + "\n"), "missing \(line) in:\n\(text)")
        }

        // What it printed is a configuration file that gives the same.
        let printed = try write(text, name: "printed.toml")
        let again = try await corral(["agent", "--config", printed, "--print-config"])
        guard case .exited(0) = again.outcome else { return XCTFail("\(again.outcome) \(again.stderr.text)") }
        XCTAssertTrue(again.stdout.text.contains("max-jobs = 5  # from the file\n"), again.stdout.text)
        XCTAssertTrue(again.stdout.text.contains("keep-for = \"2d\"  # from the file\n"), again.stdout.text)
    }

    func testTheAgentRunsWithTheFilesSettings() throws {
        let token = try write("s3cret\n", name: "token")
        let file = try write("""
            token-file = \(quoted(token))
            max-jobs = 1
            """)
        let agent = try startAgent(["--config", file])
        let client = agent.client
        XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":["true"]}"#).status, 401)
        let auth = ["Authorization": "Bearer s3cret"]
        // max-jobs = 1: the second job waits for the first.
        let first = try client.post("/v1/jobs", json: #"{"argv":["sleep","30"]}"#, headers: auth)
        let second = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#, headers: auth)
        XCTAssertEqual(first.status, 201, first.text)
        let ids = try [first, second].map { try XCTUnwrap($0.json["id"] as? String, $0.text) }
        XCTAssertTrue(waitUntil { (try? client.get("/v1/jobs/\(ids[0])", headers: auth).json["state"] as? String) == "running" })
        XCTAssertEqual(try client.get("/v1/jobs/\(ids[1])", headers: auth).json["state"] as? String, "queued")
        XCTAssertEqual(try client.delete("/v1/jobs/\(ids[0])", headers: auth).status, 202)
    }

    func testMistakesInTheFileNameTheirKey() async throws {
        let cases: [(String, String)] = [
            ("max-job = 3", "unknown key \"max-job\""),
            ("max-jobs = 0", ": max-jobs: must be from 1 to 100000, got 0"),
            ("max-jobs = \"many\"", ": max-jobs: expected an integer, got a string"),
            ("max-jobs = 2.5", ": max-jobs: expected an integer, got a number with a fraction"),
            ("keep-for = \"soon\"", ": keep-for expects a duration like"),
            ("flush-interval = \"5m\"", ": flush-interval must be from 1ms to 1m"),
            ("max-output = \"0\"", ": max-output expects a size"),
            ("allow-user = [1]", ": allow-user: expected a list of strings"),
            ("containment = \"cgroup\"", ": containment expects auto or process-group"),
            ("listen = \"nowhere\"", ": listen expects HOST:PORT"),
            ("[agent]\nmax-jobs = 3", "unknown key \"agent\""),
            ("max-jobs = ", "line 1"),
        ]
        for (text, expected) in cases {
            let file = try write(text)
            let result = try await corral(["agent", "--config", file, "--data-dir", dataDirectory, "--print-config"])
            guard case .exited(125) = result.outcome else {
                XCTFail("\(text): \(result.outcome) \(result.stdout.text)")
                continue
            }
            XCTAssertTrue(result.stderr.text.contains(file), "\(text): \(result.stderr.text)")
            XCTAssertTrue(result.stderr.text.contains(expected), "\(text): expected \(expected) in \(result.stderr.text)")
        }
        // The same mistakes as flags name the flag.
        let flag = try await corral(["agent", "--max-jobs", "0", "--print-config"])
        XCTAssertTrue(flag.stderr.text.contains("--max-jobs: must be from 1 to 100000, got 0"), flag.stderr.text)
        // A negative value is a value, not a missing one.
        for (arguments, expected) in [(["--max-jobs", "-1"], "--max-jobs: must be from 1 to 100000, got -1"),
                                      (["--shutdown-grace", "-5s"], "--shutdown-grace expects a duration")] {
            let negative = try await corral(["agent", "--print-config"] + arguments)
            XCTAssertTrue(negative.stderr.text.contains(expected), "\(arguments): \(negative.stderr.text)")
            XCTAssertFalse(negative.stderr.text.contains("Missing value"), "\(arguments): \(negative.stderr.text)")
        }
        // Fleet settings too, before anything connects to the database.
        let fleet: [([String], String)] = [
            (["--fleet-reconnect", "500ms"], "--fleet-reconnect must be from 1s to 5m"),
            (["--fleet-reconnect", "10m"], "--fleet-reconnect must be from 1s to 5m"),
            (["--fleet-reconnect", "soon"], "--fleet-reconnect expects a duration like"),
            (["--fleet-poll", "5ms"], "the poll intervals must be from 10ms to 5m"),
            (["--fleet-poll", "2s", "--fleet-idle-poll", "1s"], "the idle one at least the busy one"),
            (["--fleet-output-cap", "2GiB"], "--fleet-output-cap must be at most 1GiB"),
        ]
        // In fleet mode and out of it (a config file may carry them for later).
        for (flags, expected) in fleet {
            for mode in [["--server-db", "postgres://corral@127.0.0.1:1/db"], []] {
                let result = try await corral(["agent", "--data-dir", dataDirectory, "--print-config"] + mode + flags)
                guard case .exited(125) = result.outcome else {
                    XCTFail("\(mode) \(flags): \(result.outcome) \(result.stdout.text)")
                    continue
                }
                XCTAssertTrue(result.stderr.text.contains(expected), "\(mode) \(flags): expected \(expected) in \(result.stderr.text)")
            }
        }
        let missing = try await corral(["agent", "--config", scratch.appendingPathComponent("none.toml").path])
        guard case .exited(125) = missing.outcome else { return XCTFail("\(missing.outcome)") }
        XCTAssertTrue(missing.stderr.text.contains("--config: cannot read"), missing.stderr.text)
    }

    /// The example shipped with scripts/install is valid as it is.
    func testTheExampleConfigurationLoads() async throws {
        let example = AgentTestCase.repositoryRoot.appendingPathComponent("packaging/agent.toml").path
        let result = try await corral(["agent", "--config", example, "--print-config"])
        guard case .exited(0) = result.outcome else { return XCTFail("\(result.outcome) \(result.stderr.text)") }
        XCTAssertTrue(result.stdout.text.contains("max-jobs = 64  # default"), result.stdout.text)
    }

    private func quoted(_ text: String) -> String { "\"" + text + "\"" }
}
