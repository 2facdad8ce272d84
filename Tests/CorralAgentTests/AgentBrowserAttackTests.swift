import Corral
import Foundation
import XCTest

/// Web pages attacking a loopback agent, in real headless Chromium: DNS
/// rebinding (a page whose name resolves to 127.0.0.1 posts a job) and
/// framing (a page on another origin iframes the agent's page).
final class AgentBrowserAttackTests: AgentTestCase {
    func testRebindingCreatesNoJobAndFramingIsBlocked() async throws {
        try requireChromium()
        let agent = try startAgent()
        // `127.0.0.1.attacker.example` passed the old prefix check.
        let names = ["rebind.test", "127.0.0.1.attacker.example"]
        let probe = AgentTestCase.repositoryRoot.appendingPathComponent("Tests/CorralAgentTests/Browser/probe_attacks.py").path
        var spec = JobSpec(.executable("python3", arguments: [probe, "\(agent.port)"] + names))
        spec.timeout = .seconds(120)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        let result = try await runner.run(spec)
        guard case .exited(0) = result.outcome else {
            return XCTFail("browser probe: \(result.outcome)\n\(result.stdout.text)\n\(result.stderr.text)")
        }
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.bytes)) as? [String: Any])
        print("browser attack probe: \(result.stdout.text)")

        let rebinding = try XCTUnwrap(report["rebinding"] as? [String: [String: Any]])
        for name in names {
            let seen = try XCTUnwrap(rebinding[name], name)
            XCTAssertTrue((seen["location"] as? String ?? "").hasPrefix("http://\(name):"), "\(seen)")
            XCTAssertTrue((seen["document"] as? String ?? "").contains("bad_host"), "the page itself is refused: \(seen)")
            let post = try XCTUnwrap(seen["post"] as? [String: Any], "\(seen)")
            XCTAssertEqual(post["status"] as? Int, 403, "\(name): \(post)")
            XCTAssertEqual((seen["list"] as? [String: Any])?["status"] as? Int, 403, "\(name): \(seen)")
        }
        XCTAssertEqual((try agent.client.get("/v1/jobs").json["jobs"] as? [Any])?.count, 0, "a rebound page created a job")

        let framing = try XCTUnwrap(report["framing"] as? [String: [String: Any]])
        // The control frame shows the probe reads a framed document.
        let control = try XCTUnwrap(framing["control"]?["seen"] as? [String: Any], "\(framing)")
        XCTAssertEqual(control["title"] as? String, "control frame")
        let framed = try XCTUnwrap(framing["agent"], "\(framing)")
        let seen = framed["seen"] as? [String: Any]
        XCTAssertNotEqual(seen?["title"] as? String, "Corral agent", "the agent's page loaded in a frame: \(framed)")
        XCTAssertNotEqual(seen?["agentForm"] as? Bool, true, "the agent's page loaded in a frame: \(framed)")
        XCTAssertNotEqual(seen?["origin"] as? String, "http://127.0.0.1:\(agent.port)", "\(framed)")
        // Chromium says why.
        XCTAssertTrue((report["log"] as? [String] ?? []).contains { $0.contains("frame-ancestors 'none'") }, "\(report)")
    }
}
