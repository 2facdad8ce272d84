import CorralTestSupport
import Foundation
import XCTest

/// Issue 13, item 7: what the strict decoder refuses reaches the client as
/// 400 naming the API's field (the decoder's path, as `argv[0]` or
/// `env.A`, when it has one), with no decoder or SQL internals.
final class AgentSpecErrorTests: AgentTestCase {
    private static let internals = ["DecodingError", "typeMismatch", "keyNotFound", "CodingKeys", "Swift.", "SQLite", "SQLITE",
                                    "GRDB", "DatabaseError", "Optional(", "Error("]

    private func expectRefusal(_ client: HTTPClient, _ body: [UInt8], field: String, _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let response = try client.request("POST", "/v1/jobs", headers: ["Content-Type": "application/json"], body: body)
        XCTAssertEqual(response.status, 400, "\(label): \(response.text)", file: file, line: line)
        let error = response.json["error"] as? [String: Any] ?? [:]
        XCTAssertEqual(error["code"] as? String, "invalid_spec", "\(label): \(response.text)", file: file, line: line)
        XCTAssertEqual(error["field"] as? String, field, "\(label): \(response.text)", file: file, line: line)
        let message = error["message"] as? String ?? ""
        XCTAssertTrue(message.hasPrefix("\(field): "), "\(label): \(message)", file: file, line: line)
        for word in AgentSpecErrorTests.internals {
            XCTAssertFalse(message.contains(word), "\(label): internals in \(message)", file: file, line: line)
        }
    }

    func testDuplicateKeysInvalidUTF8AndWrongTypesName400TheField() throws {
        let agent = try startAgent()
        let client = agent.client

        try expectRefusal(client, Array(#"{"argv":["true"],"argv":["false"]}"#.utf8), field: "argv", "duplicate argv")
        try expectRefusal(client, Array(#"{"argv":["true"],"timeout":"1s","timeout":"2s"}"#.utf8), field: "timeout", "duplicate timeout")
        try expectRefusal(client, Array(#"{"argv":["env"],"env":{"A":"1","A":"2"}}"#.utf8), field: "env", "duplicate env key")
        try expectRefusal(client, Array(#"{"argv":["echo",""#.utf8) + [0xFF, 0xFE] + Array(#""]}"#.utf8), field: "argv", "invalid UTF-8 in argv")
        try expectRefusal(client, Array(#"{"shell":"echo "#.utf8) + [0xC3, 0x28] + Array(#"","timeout":"1s"}"#.utf8), field: "shell", "invalid UTF-8 in shell")
        try expectRefusal(client, Array(#"{"argv":["env"],"env":{"A":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}}"#.utf8), field: "env", "a surrogate in env")

        let wrongTypes: [(String, String)] = [
            ("argv", #"{"argv":"true"}"#),
            ("argv[0]", #"{"argv":[1,2]}"#),
            ("shell", #"{"shell":["echo"]}"#),
            ("timeout", #"{"argv":["true"],"timeout":true}"#),
            ("signal", #"{"argv":["true"],"signal":{}}"#),
            ("kill_after", #"{"argv":["true"],"kill_after":[]}"#),
            ("drain", #"{"argv":["true"],"drain":false}"#),
            ("env", #"{"argv":["true"],"env":"A=1"}"#),
            ("env.A", #"{"argv":["true"],"env":{"A":1}}"#),
            ("cwd", #"{"argv":["true"],"cwd":1}"#),
            ("stdin", #"{"argv":["true"],"stdin":1}"#),
            ("max_output", #"{"argv":["true"],"max_output":true}"#),
            ("combine_output", #"{"argv":["true"],"combine_output":"yes"}"#),
            ("leave_running", #"{"argv":["true"],"leave_running":1}"#),
            ("user", #"{"argv":["true"],"user":true}"#),
            ("group", #"{"argv":["true"],"group":[]}"#),
            ("id", #"{"argv":["true"],"id":{}}"#),
        ]
        for (field, body) in wrongTypes {
            try expectRefusal(client, Array(body.utf8), field: field, body)
        }
        // Nothing of it became a job.
        XCTAssertEqual((try client.get("/v1/jobs").json["jobs"] as? [Any])?.count, 0)
    }

    /// Issue 12: each value that once killed the agent with SIGILL (an
    /// unchecked conversion, or a timer overflowing at spawn) is a 400
    /// naming its field; a job running beside them keeps its deadline and
    /// the agent stays up.
    func testOutOfRangeNumbersAre400AndTheAgentStaysUp() throws {
        let agent = try startAgent()
        let client = agent.client
        let victim = try client.request("POST", "/v1/jobs", headers: ["Content-Type": "application/json"],
                                        body: Array(#"{"argv":["sleep","30"],"timeout":"2s"}"#.utf8))
        XCTAssertEqual(victim.status, 201, victim.text)
        let hostile: [(String, String)] = [
            ("id", #"{"id":1e19,"argv":["true"]}"#),
            ("signal", #"{"argv":["true"],"signal":1e19}"#),
            ("signal", #"{"argv":["true"],"signal":1.5}"#),
            ("max_output", #"{"argv":["true"],"max_output":1e19}"#),
            ("user", #"{"argv":["true"],"user":1e10}"#),
            ("user", #"{"argv":["true"],"user":4294967295}"#),
            ("group", #"{"argv":["true"],"group":5e9}"#),
            ("timeout", #"{"argv":["true"],"timeout":1e30}"#),
            ("timeout", #"{"argv":["true"],"timeout":30e9}"#),
            ("timeout", #"{"argv":["true"],"timeout":"99999999999h"}"#),
            ("timeout", #"{"argv":["true"],"timeout":0}"#),
            ("kill_after", #"{"argv":["true"],"kill_after":1e30}"#),
            ("drain", #"{"argv":["true"],"drain":"99999999999h"}"#),
        ]
        for (field, body) in hostile {
            try expectRefusal(client, Array(body.utf8), field: field, body)
        }
        XCTAssertEqual(try client.get("/healthz").status, 200, "the agent is still up")
        let id = try XCTUnwrap(victim.json["id"] as? String)
        let final = try waitForFinal(client, id)
        XCTAssertEqual(final["state"] as? String, "timed_out", "\(final)")
    }
}
