import Corral
import Foundation
import XCTest

/// The page in a real headless browser (Debian's chromium), driven over
/// the DevTools protocol: load `/`, submit a job through the form, see its
/// output stream into the job view, and keep a screenshot.
final class AgentPageTests: AgentTestCase {
    func testPageSubmitsAJobAndShowsItsOutputLive() async throws {
        try requireChromium()
        let agent = try startAgent()
        let artifacts = AgentTestCase.repositoryRoot.appendingPathComponent(".build/test-artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let screenshot = artifacts.appendingPathComponent("agent-page.png").path
        try? FileManager.default.removeItem(atPath: screenshot)

        let driver = AgentTestCase.repositoryRoot.appendingPathComponent("Tests/CorralAgentTests/Browser/drive_page.py").path
        var spec = JobSpec(.executable("python3", arguments: [
            driver, "http://127.0.0.1:\(agent.port)/", screenshot,
            "echo hello from the page; sleep 0.5; echo second line", "second line",
        ]))
        spec.timeout = .seconds(120)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        let result = try await runner.run(spec)
        guard case .exited(0) = result.outcome else {
            return XCTFail("browser driver: \(result.outcome)\n\(result.stdout.text)\n\(result.stderr.text)")
        }
        let shown = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.bytes)) as? [String: Any])
        XCTAssertEqual(shown["state"] as? String, "✓ exited ok")
        XCTAssertEqual((shown["csp_violations"] as? [String])?.count, 0, "the page breaks its own policy: \(shown)")
        XCTAssertTrue((shown["output"] as? String ?? "").contains("hello from the page\nsecond line"), "\(shown)")
        let job = try XCTUnwrap((shown["job"] as? String)?.split(separator: " ").first.map(String.init))
        XCTAssertTrue((shown["rows"] as? [String] ?? []).contains { $0.hasPrefix(job) }, "\(shown)")

        // The page's job is the API's job.
        let record = try agent.client.get("/v1/jobs/\(job)").json
        XCTAssertEqual((record["result"] as? [String: Any])?["stdout"] as? String, "hello from the page\nsecond line\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: screenshot)
        XCTAssertGreaterThan(attributes[.size] as? Int ?? 0, 10_000, "screenshot at \(screenshot)")
        print("agent page screenshot: \(screenshot)")
    }
}
