import Foundation
import XCTest
import CorralTestSupport
@testable import Corral

/// Starts the built `corral agent` as a real process (a job of a test
/// runner), talks to it over real sockets, and checks at the end that no
/// process of it or its jobs is left.
class AgentTestCase: XCTestCase {
    private(set) var runner: Runner!
    private(set) var scratch: URL!
    /// Every process started here carries it, agent and jobs alike.
    private(set) var marker = ""
    private var agents: [AgentProcess] = []
    /// Where `startAgent(inPrivateCgroup: true)` puts agents (made on first use).
    private var privateCgroup: PrivateCgroup?

    static var binary: String { EndToEnd.corralBinary }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    override func setUp() async throws {
        try await super.setUp()
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: AgentTestCase.binary), AgentTestCase.binary)
        // The agent is contained by process group only, and its jobs are
        // left alone when it dies: a crash test must find the jobs exactly
        // as a crashed agent leaves them (the agent itself uses cgroups).
        let prepared = try EndToEnd.prepare("corral-agent", containment: .processGroup)
        scratch = prepared.scratch; marker = prepared.marker; runner = prepared.runner
    }

    override func tearDown() async throws {
        for agent in agents where !agent.hasExited {
            agent.terminate()
            _ = agent.waitForExit()
        }
        XCTAssertTrue(waitUntil { self.markedProcesses().isEmpty }, "left behind: \(markedProcesses())")
        privateCgroup?.remove()
        await runner.shutdown()
        XCTAssertEqual(runner.diagnostics.loopCloseStatus, 0)
        try? FileManager.default.removeItem(at: scratch)
        try await super.tearDown()
    }

    var dataDirectory: String { scratch.appendingPathComponent("data").path }

    /// Starts an agent on a free loopback port with this test's data
    /// directory (unless told otherwise) and waits until it listens.
    ///
    /// `inPrivateCgroup`: the agent runs in a cgroup v2 directory of this
    /// test's own (where one is writable), so its runners' directories are
    /// where no other runner's stale-directory cleanup looks. A crash test
    /// that kills the watchdog needs it: any corral starting on the machine
    /// meanwhile (another test suite, another lane of CI) would otherwise
    /// empty the dead runner's directory before the restarted agent could.
    func startAgent(_ arguments: [String] = [], dataDirectory: String? = nil, workingDirectory: String? = nil,
                    inPrivateCgroup: Bool = false,
                    file: StaticString = #filePath, line: UInt = #line) throws -> AgentProcess {
        var all = ["agent", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory ?? self.dataDirectory,
                   "--flush-interval", "50ms", "--keep-alive", "1s"]
        all += arguments
        if inPrivateCgroup, privateCgroup == nil { privateCgroup = PrivateCgroup() }
        let agent: AgentProcess
        if inPrivateCgroup, let cgroup = privateCgroup {
            // A shell moves itself there, then execs the agent (same pid).
            agent = try launch("/bin/sh", ["-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, cgroup.path, AgentTestCase.binary] + all,
                               workingDirectory: workingDirectory)
        } else {
            agent = try launch(AgentTestCase.binary, all, workingDirectory: workingDirectory)
        }
        guard agent.waitUntilListening() else {
            let result = agent.waitForExit()
            XCTFail("the agent did not start: \(result.map { "\($0.outcome) " + $0.stderr.text + $0.stdout.text } ?? "no result")",
                    file: file, line: line)
            throw HTTPClient.Failure(description: "agent did not start")
        }
        return agent
    }

    /// Starts a process that becomes an agent (the binary itself, or a
    /// shell that execs it in an odd setting) without waiting for it; it is
    /// stopped at the end of the test like every agent.
    func launch(_ executable: String, _ arguments: [String], workingDirectory: String? = nil) throws -> AgentProcess {
        let agent = try AgentProcess(runner: runner, binary: executable, arguments: arguments, marker: marker,
                                     workingDirectory: workingDirectory)
        agents.append(agent)
        return agent
    }

    /// A loopback port nothing listens on right now (for an agent whose
    /// stdout cannot tell the one it picked).
    func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw HTTPClient.Failure(description: "no free port: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Skips the test, loudly, when Debian's chromium is not installed.
    func requireChromium() throws {
        if let message = EndToEnd.chromiumMissing(name) { throw XCTSkip(message) }
    }

    /// Runs `corral` with these arguments to the end (for start-up failures).
    func corral(_ arguments: [String]) async throws -> JobResult {
        var spec = JobSpec(.executable(AgentTestCase.binary, arguments: arguments))
        spec.timeout = .seconds(60)
        spec.environment = .inherit(updating: ["CORRAL_E2E_MARKER": marker])
        return try await runner.run(spec)
    }

    /// Processes that carry this test's marker (the agent and its jobs).
    func markedProcesses() -> [String] { EndToEnd.markedProcesses(marker) }

    /// Marked processes other than the agent itself and runners'
    /// watchdogs: what its jobs left.
    func jobProcesses(of agent: AgentProcess) -> [String] {
        markedProcesses().filter { !$0.hasPrefix("\(agent.pid) ") && !$0.hasSuffix(" corral-watchdog") }
    }

    /// The pid of the agent's runner's watchdog (a child of the agent).
    func watchdog(of agent: AgentProcess) -> Int32? {
        var found: Int32?
        _ = waitUntil {
            found = markedProcesses().filter { $0.hasSuffix(" corral-watchdog") }
                .compactMap { Int32($0.split(separator: " ")[0]) }
                .first { pid in
                    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
                    guard let close = stat.lastIndex(of: ")") else { return false }
                    return stat[stat.index(close, offsetBy: 2)...].split(separator: " ").dropFirst().first == "\(agent.pid)"
                }
            return found != nil
        }
        return found
    }

    func waitUntil(upTo limit: Duration = .seconds(30), _ condition: () -> Bool) -> Bool {
        EndToEnd.waitUntil(upTo: limit, polling: 20_000, condition)
    }

    /// Polls a job until it is final; returns it.
    func waitForFinal(_ client: HTTPClient, _ id: String, upTo limit: Duration = .seconds(60)) throws -> [String: Any] {
        var job: [String: Any] = [:]
        let done = waitUntil(upTo: limit) {
            job = (try? client.get("/v1/jobs/\(id)").json) ?? [:]
            return job["final"] as? Bool == true
        }
        XCTAssertTrue(done, "job \(id) not final: \(job)")
        return job
    }

    func waitForState(_ client: HTTPClient, _ id: String, _ state: String) -> Bool {
        waitUntil { (try? client.get("/v1/jobs/\(id)").json["state"] as? String) == state }
    }
}

/// A running `corral agent`: the process driver the fleet tests share.
typealias AgentProcess = CorralProcess

extension CorralProcess {
    /// A client of the agent's API on its port.
    var client: HTTPClient { HTTPClient(port: port) }

    /// SIGTERM: the agent's graceful shutdown.
    func terminate() { signal(SIGTERM) }

    /// SIGKILL to the agent alone (not its jobs): a crash.
    func crash() { signal(SIGKILL) }
}
