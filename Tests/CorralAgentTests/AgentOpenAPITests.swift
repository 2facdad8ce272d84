import Foundation
import XCTest
@testable import Corral

/// The OpenAPI document served at `/openapi.json` describes the live API:
/// its paths and methods are the router's, and schemathesis, driving a
/// real agent from it, finds no 5xx, no undocumented status, content type
/// or body shape, and no schema-invalid input accepted.
final class AgentOpenAPITests: AgentTestCase {
    /// Each documented path answers exactly the documented methods: a
    /// method it does not have gets 405 with `Allow` listing the rest, and
    /// a path missing from the document would be a 404 there.
    func testTheDocumentListsEveryRouteAndMethod() throws {
        let agent = try startAgent(["--token-file", try tokenFile()])
        let client = agent.client
        let served = try client.get("/openapi.json")  // no token needed
        XCTAssertEqual(served.status, 200)
        XCTAssertEqual(served.headers["content-type"], "application/json")
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(served.text.utf8)) as? [String: Any])
        XCTAssertEqual(document["openapi"] as? String, "3.1.0")
        let paths = try XCTUnwrap(document["paths"] as? [String: [String: Any]])
        XCTAssertEqual(Set(paths.keys), ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/output", "/v1/jobs/{id}/events",
                                         "/healthz", "/metrics", "/openapi.json"])
        let verbs: Set<String> = ["get", "post", "put", "delete", "patch"]
        for (path, item) in paths {
            let documented = Set(item.keys.filter(verbs.contains).map { $0.uppercased() })
            let concrete = path.replacingOccurrences(of: "{id}", with: "j1")
            let wrong = try client.request("PATCH", concrete, headers: ["Authorization": "Bearer \(token)"])
            XCTAssertEqual(wrong.status, 405, path)
            let allowed = Set((wrong.headers["allow"] ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces) })
            XCTAssertEqual(allowed, documented, "\(path): the router allows \(allowed), the document says \(documented)")
        }
        // Every operation that needs the token says 401 in the document.
        for (path, item) in paths where path != "/healthz" && path != "/openapi.json" {
            for (verb, operation) in item where verbs.contains(verb) {
                let responses = (operation as? [String: Any])?["responses"] as? [String: Any] ?? [:]
                XCTAssertNotNil(responses["401"], "\(verb.uppercased()) \(path) does not document 401")
            }
        }
    }

    /// schemathesis (scripts/test installs it) against a live agent:
    /// examples, coverage, fuzzing and stateful phases, bounded in time.
    /// `use_after_free` is left out because DELETE cancels a job and keeps
    /// its record (documented), and `positive_data_acceptance` because the
    /// schema cannot say everything the decoder refuses (a NUL in argv, a
    /// timeout of "0s"); every other check runs.
    func testTheLiveAPIMatchesTheDocumentUnderFuzzing() async throws {
        let st = AgentTestCase.repositoryRoot.appendingPathComponent(".build-tools/schemathesis/bin/st").path
        guard FileManager.default.isExecutableFile(atPath: st) else {
            throw XCTSkip("schemathesis is not installed at \(st): scripts/test installs it")
        }
        // Its jobs (random argv and shell text) run in the test's scratch
        // directory, so whatever files they make go with it.
        let agent = try startAgent(["--max-jobs", "4", "--default-timeout", "5s"], workingDirectory: scratch.path)
        var spec = JobSpec(.executable(st, arguments: [
            "run", "http://127.0.0.1:\(agent.port)/openapi.json",
            "--max-examples", "20", "--max-time", "30", "--seed", "20261201",
            "--exclude-path-regex", "events$",
            "--exclude-checks", "positive_data_acceptance,use_after_free",
            "--request-timeout", "10", "--no-color",
        ]))
        spec.workingDirectory = scratch.path  // its cache (.schemathesis/) goes with the test's scratch
        spec.timeout = .seconds(240)
        spec.output = .combined
        spec.outputLimit = .bytes(128 << 10)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        let result = try await runner.run(spec)
        let text = result.stdout.text
        XCTAssertEqual(result.outcome, .exited(0), "schemathesis found problems:\n\(text.suffix(12_000))")
        XCTAssertTrue(text.contains("API Operations"), text.suffix(2_000).description)
        // The agent is still up and answering after the run.
        XCTAssertEqual(try agent.client.get("/healthz").status, 200)
    }

    private let token = "openapi-test-token-0123456789"

    private func tokenFile() throws -> String {
        let path = scratch.appendingPathComponent("token").path
        try token.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
