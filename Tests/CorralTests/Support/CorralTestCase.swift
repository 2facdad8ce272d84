import Foundation
import XCTest
@testable import Corral

/// A test case with a runner that is shut down after each test, and checks
/// that nothing is left behind: no descriptor beyond those open before the
/// test, no libuv handle at loop close.
class CorralTestCase: XCTestCase {
    private(set) var runner: Runner!
    private var descriptorsBefore = 0
    private(set) var scratch: URL!

    /// Override to change the runner's configuration.
    var configuration: Runner.Configuration {
        var configuration = Runner.Configuration()
        configuration.reapOrphans = true  // this machine's pid 1 does not reap
        configuration.containment = CorralTestCase.containment
        return configuration
    }

    /// The tier every scenario runs in: automatic (the cgroup tier where
    /// cgroup v2 is writable), or the process-group tier when
    /// CORRAL_TEST_CONTAINMENT=processGroup; scripts/test runs both.
    static var containment: ContainmentSetting {
        ProcessInfo.processInfo.environment["CORRAL_TEST_CONTAINMENT"] == "processGroup" ? .processGroup : .automatic
    }

    /// libuv opens its signal pipe once per process, on first use: do that
    /// before any test counts descriptors.
    nonisolated(unsafe) private static var warmedUp = false

    private static func warmUp() async throws {
        guard !warmedUp else { return }
        warmedUp = true
        var configuration = Runner.Configuration()
        configuration.reapOrphans = true
        let runner = try Runner(configuration: configuration)
        _ = try await runner.run(JobSpec(.executable("/bin/true")))
        await runner.shutdown()
    }

    override func setUp() async throws {
        try await super.setUp()
        try await CorralTestCase.warmUp()
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("corral-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        descriptorsBefore = ProcessTable.descriptorCount
        runner = try Runner(configuration: configuration)
    }

    override func tearDown() async throws {
        if let runner {
            await runner.shutdown()
            let diagnostics = runner.diagnostics
            XCTAssertEqual(diagnostics.loopCloseStatus, 0, "uv_loop_close: handles left open: \(diagnostics.leakedHandles)")
        }
        runner = nil
        XCTAssertEqual(ProcessTable.descriptorCount, descriptorsBefore, "descriptors leaked: \(openDescriptors())")
        try? FileManager.default.removeItem(at: scratch)
        try await super.tearDown()
    }

    private func openDescriptors() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.sorted().map { name in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")) ?? "?"
            return "\(name)->\(target)"
        }
    }

    /// Writes an executable script into the scratch directory.
    @discardableResult
    func script(_ name: String, _ body: String, mode: Int = 0o755) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    /// Asserts that no process of the job remains (waiting for killed ones
    /// to be reaped, up to a generous bound).
    func assertNothingLeft(_ result: JobResult, file: StaticString = #filePath, line: UInt = #line) {
        let gone = ProcessTable.wait { ProcessTable.processes(of: result.id, group: result.pid).isEmpty }
        XCTAssertTrue(gone, "left behind: \(ProcessTable.processes(of: result.id, group: result.pid))",
                      file: file, line: line)
    }

    /// The pid of the job's process running `command`, once it exists.
    func waitForProcess(of id: JobID, named command: String) -> Int32? {
        var found: Int32?
        _ = ProcessTable.wait {
            found = ProcessTable.all().first { $0.command == command && $0.state != "Z"
                && ProcessTable.carries($0.pid, jobID: id) }?.pid
            return found != nil
        }
        return found
    }
}

extension JobSpec {
    static func shell(_ text: String, timeout: Duration? = nil) -> JobSpec {
        var spec = JobSpec(.shell(text))
        spec.timeout = timeout
        return spec
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
