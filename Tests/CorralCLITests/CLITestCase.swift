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
        let prepared = try EndToEnd.prepare("corral-cli")
        scratch = prepared.scratch; marker = prepared.marker; runner = prepared.runner
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

    /// Runs a bash script with corral's path as $0 and this test's marker
    /// in its environment; the lines "key=value" it prints on stderr come
    /// back as a dictionary, with the whole stderr under "stderr".
    func bash(_ script: String, timeout: Duration = .seconds(120)) async throws -> [String: String] {
        var spec = JobSpec(.executable("/bin/bash", arguments: ["-c", script, CLITestCase.binary]))
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        spec.timeout = timeout
        spec.outputLimit = .unlimited
        spec.workingDirectory = scratch.path
        let result = try await runner.run(spec)
        var values: [String: String] = [:]
        for line in result.stderr.text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        values["stderr"] = result.stderr.text
        values["stdout"] = result.stdout.text
        return values
    }

    /// Seconds between two "key=<date +%s%N>" lines of `bash`.
    func seconds(_ values: [String: String], from: String, to: String) -> Double {
        guard let start = values[from].flatMap(Double.init), let end = values[to].flatMap(Double.init) else { return .infinity }
        return (end - start) / 1e9
    }

    /// bash lines that open descriptor 4 on a FIFO nobody reads (bash holds
    /// it open for reading and writing, and never reads); $fifo is its path.
    /// With `full`, the pipe's buffer is filled first, so the next write blocks.
    static func stalledReader(full: Bool = false) -> String {
        #"""
        fifo=$(mktemp -u); mkfifo "$fifo"
        trap 'rm -f "$fifo"' EXIT
        exec 4<>"$fifo"

        """# + (full ? "head -c 65536 /dev/zero >&4\n" : "")
    }

    /// A bash function: `alive ARG` prints how many `sleep ARG` processes
    /// carry this test's marker (fast: one python, no fork per process).
    static let aliveFunction = #"""
        alive() { python3 -c '
        import os, sys
        marker = ("CORRAL_E2E_MARKER=" + os.environ["CORRAL_E2E_MARKER"]).encode()
        count = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if open(f"/proc/{pid}/cmdline", "rb").read() == b"sleep\0" + sys.argv[1].encode() + b"\0" \
                        and marker in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
                    count += 1
            except OSError:
                pass
        print(count)' "$1"; }
        now() { date +%s%N; }

        """#

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
