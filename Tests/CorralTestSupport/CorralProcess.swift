import Corral
import Foundation
import Synchronization

/// A running `corral` process (an agent or a server), started as a job of
/// the test's runner: its output gathered, its port read from the
/// "listening on" line, its result kept once it exits. The agent and fleet
/// test targets both drive their processes through it.
public final class CorralProcess: Sendable {
    private struct State {
        var output = ""
        var pid: Int32 = 0
        var port: UInt16 = 0
        var result: JobResult?
    }
    private final class Shared: Sendable {
        let state = Mutex(State())
        let exited = DispatchSemaphore(value: 0)
    }
    private let shared = Shared()
    private let handle: JobHandle

    /// Starts `binary` with `arguments`, its environment marked with
    /// `CORRAL_E2E_MARKER=<marker>` (so a test finds what it leaves behind).
    public init(runner: Runner, binary: String = EndToEnd.corralBinary, arguments: [String], marker: String,
                workingDirectory: String? = nil) throws {
        var spec = JobSpec(.executable(binary, arguments: arguments))
        spec.workingDirectory = workingDirectory
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        spec.outputLimit = .unlimited
        spec.timeout = .seconds(600)
        spec.lingering = .leaveRunning
        let shared = self.shared
        handle = try runner.submit(
            spec,
            onOutput: { chunk in shared.state.withLock { $0.output += String(decoding: chunk.bytes, as: UTF8.self) } },
            onStart: { start in shared.state.withLock { $0.pid = start.pid } },
            onCompletion: { result in
                shared.state.withLock { $0.result = result }
                shared.exited.signal()
            })
    }

    public var pid: Int32 { shared.state.withLock { $0.pid } }
    public var output: String { shared.state.withLock { $0.output } }
    public var hasExited: Bool { shared.state.withLock { $0.result != nil } }
    /// The port from the "listening on" line (0 before `waitUntilListening` found it).
    public var port: UInt16 { shared.state.withLock { $0.port } }

    /// Whether the process said it listens (and on which port) within `limit`.
    public func waitUntilListening(upTo limit: Duration = .seconds(60)) -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !hasExited {
            let output = self.output
            if let range = output.range(of: "listening on http://127.0.0.1:") {
                let digits = output[range.upperBound...].prefix(while: \.isNumber)
                if let port = UInt16(digits) {
                    shared.state.withLock { $0.port = port }
                    return true
                }
            }
            usleep(20_000)
        }
        return false
    }

    /// Sends `number` to the process alone (not its jobs), if it still runs.
    public func signal(_ number: Int32) {
        let pid = self.pid
        if pid > 0, !hasExited { kill(pid, number) }
    }

    /// The process's own result once it exited (nil if it did not within the limit).
    public func waitForExit(upTo limit: Duration = .seconds(60)) -> JobResult? {
        let seconds = Double(limit.components.seconds)
        if shared.exited.wait(timeout: .now() + seconds) == .success { shared.exited.signal() }
        return shared.state.withLock { $0.result }
    }
}
