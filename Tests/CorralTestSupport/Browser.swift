import Corral
import Foundation

/// What the agent's and the fleet's browser tests share (headless Chromium
/// driven by a python script over DevTools).
extension EndToEnd {
    /// Why `test` cannot run in a browser here (Debian's chromium is not
    /// installed), said loudly on stderr; nil when it can. The caller
    /// throws `XCTSkip` with it (this target does not link XCTest).
    public static func chromiumMissing(_ test: String) -> String? {
        guard !["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains(where: FileManager.default.isExecutableFile) else {
            return nil
        }
        let message = "SKIPPED LOUDLY: chromium is not installed (scripts/test installs it with apt); \(test) was NOT run in a browser"
        FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
        return message
    }

    /// Runs a browser driver, `python3 <driver> <arguments…>`, to the end as
    /// a job of `runner` marked with `marker`; its report (stdout) is kept
    /// up to 16 MiB.
    public static func runDriver(_ driver: String, _ arguments: [String], runner: Runner, marker: String,
                                 timeout: Duration) async throws -> JobResult {
        var spec = JobSpec(.executable("python3", arguments: [driver] + arguments))
        spec.timeout = timeout
        spec.outputLimit = .bytes(16 << 20)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        return try await runner.run(spec)
    }

    /// `.build/test-artifacts` of the repository at `root` (made if missing),
    /// where the browser tests keep their screenshots.
    public static func artifacts(in root: URL) throws -> URL {
        let directory = root.appendingPathComponent(".build/test-artifacts")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A page driver's report (its stdout as a JSON object; nil when there
    /// is none) and what is wrong with the run: the driver failed, printed
    /// no JSON object, or the page broke its own Content-Security-Policy.
    public static func pageReport(_ result: JobResult, _ what: String) -> (report: [String: Any]?, problems: [String]) {
        guard case .exited(0) = result.outcome else {
            return (nil, ["\(what): \(result.outcome)\n\(result.stdout.text.prefix(4000))\n\(result.stderr.text.suffix(4000))"])
        }
        guard let report = (try? JSONSerialization.jsonObject(with: Data(result.stdout.bytes))) as? [String: Any] else {
            return (nil, ["\(what): the driver printed no JSON object\n\(result.stdout.text.prefix(4000))"])
        }
        let violations = (report["csp_violations"] as? [String])?.count
        return (report, violations == 0 ? [] : ["\(what): the page breaks its own policy: \(report)"])
    }
}
