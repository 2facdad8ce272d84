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
}
