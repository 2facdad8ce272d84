import Foundation
import Synchronization
import XCTest
import CorralTestSupport
@testable import Corral

/// Runs the built `corral` binary as a job of a test runner: real process,
/// real pipes, real signals.
class CLITestCase: XCTestCase {
    private(set) var runner: Runner!
    private(set) var scratch: URL!
    /// A value no other process has in its environment; every corral started
    /// here passes it on to its jobs, so leftovers can be found.
    private(set) var marker = ""

    static var binary: String { EndToEnd.corralBinary }

    override func setUp() async throws {
        try await super.setUp()
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLITestCase.binary), CLITestCase.binary)
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("corral-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        marker = UUID().uuidString
        var configuration = Runner.Configuration()
        configuration.reapOrphans = true
        runner = try Runner(configuration: configuration)
    }

    override func tearDown() async throws {
        XCTAssertTrue(waitUntil { self.markedProcesses().isEmpty }, "left behind: \(markedProcesses())")
        await runner.shutdown()
        XCTAssertEqual(runner.diagnostics.loopCloseStatus, 0)
        try? FileManager.default.removeItem(at: scratch)
        try await super.tearDown()
    }

    func spec(_ arguments: [String], stdin: String? = nil) -> JobSpec {
        var spec = JobSpec(.executable(CLITestCase.binary, arguments: arguments))
        spec.outputLimit = .unlimited
        spec.timeout = .seconds(120)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        if let stdin { spec.input = .text(stdin) }
        return spec
    }

    /// Runs corral with these arguments to the end.
    func corral(_ arguments: String..., stdin: String? = nil) async throws -> JobResult {
        try await runner.run(spec(arguments, stdin: stdin))
    }

    var exitCode: (JobResult) -> Int32? {
        { result in if case .exited(let code) = result.outcome { return code } else { return nil } }
    }

    /// Processes that carry this test's marker (corral and its jobs).
    func markedProcesses() -> [String] { EndToEnd.markedProcesses(marker) }

    /// The pid of a marked process named `command`, once there is one.
    func waitForMarked(_ command: String) -> Int32? {
        var pid: Int32?
        _ = waitUntil {
            pid = self.markedProcesses().first { $0.hasSuffix(" \(command)") }.flatMap { Int32($0.split(separator: " ")[0]) }
            return pid != nil
        }
        return pid
    }

    func waitUntil(upTo limit: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
        EndToEnd.waitUntil(upTo: limit, polling: 10_000, condition)
    }

    func jsonLines(_ output: CapturedOutput) throws -> [[String: Any]] {
        try output.text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// Collects results from the loop thread.
final class Collected: Sendable {
    private let results = Mutex<[JobResult]>([])
    var add: @Sendable (JobResult) -> Void { { result in self.results.withLock { $0.append(result) } } }
    var first: JobResult? { results.withLock { $0.first } }
}
