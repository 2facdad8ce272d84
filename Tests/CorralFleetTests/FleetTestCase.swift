import Corral
import CorralTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Fleet tests end to end: a real PostgreSQL (CORRAL_TEST_PG_URL, which
/// scripts/test starts with scripts/pg-cluster), a database of their own
/// per test, the built `corral server` and `corral agent` as real
/// processes (jobs of a test runner, marked), talked to over HTTP. Without
/// CORRAL_TEST_PG_URL the tests skip and say so; with it set and the
/// database unreachable they fail.
class FleetTestCase: XCTestCase {
    private(set) var runner: Runner!
    private(set) var scratch: URL!
    private(set) var marker = ""
    private(set) var databaseURL = ""
    private var adminURL = ""
    private(set) var databaseName = ""
    private var processes: [FleetProcess] = []
    private(set) var server: FleetProcess!

    /// Fails when `run_tally` (kept by the task transitions) disagrees with
    /// a count of the task rows.
    static let tallyCheck = """
        DO $$ BEGIN
          IF EXISTS (
            SELECT 1 FROM (SELECT run_id, state, fleet_is_error(state, exit_code) AS error, count(*) AS n FROM task GROUP BY 1, 2, 3) counted
              FULL JOIN (SELECT run_id, state, error, n FROM run_tally WHERE n > 0) kept USING (run_id, state, error)
             WHERE counted.n IS DISTINCT FROM kept.n) THEN
            RAISE EXCEPTION 'run_tally disagrees with the task rows';
          END IF;
        END $$
        """

    /// Short, so that the death of an agent is seen within seconds.
    var agentTTL: String { "2s" }

    override func setUp() async throws {
        try await super.setUp()
        guard let url = ProcessInfo.processInfo.environment["CORRAL_TEST_PG_URL"], !url.isEmpty else {
            let message = "SKIPPED: CORRAL_TEST_PG_URL is not set (scripts/test starts PostgreSQL with scripts/pg-cluster and sets it); \(name) was NOT run"
            FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
            throw XCTSkip(message)
        }
        adminURL = url
        let name = "corral_test_" + UUID().uuidString.prefix(8).lowercased()
        try await FleetTestCase.admin(url, "CREATE DATABASE \(name)")
        databaseName = name  // dropped at the end
        guard let slash = url.range(of: "/", options: .backwards, range: url.range(of: "://")!.upperBound..<url.endIndex) else {
            throw FleetTestFailure("CORRAL_TEST_PG_URL has no database part: \(url)")
        }
        let query = url[slash.upperBound...].firstIndex(of: "?").map { String(url[$0...]) } ?? ""
        databaseURL = String(url[..<slash.upperBound]) + databaseName + query
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: EndToEnd.corralBinary), EndToEnd.corralBinary)
        let prepared = try EndToEnd.prepare("corral-fleet", containment: .processGroup)
        scratch = prepared.scratch; marker = prepared.marker; runner = prepared.runner
        server = try startServer()
    }

    override func tearDown() async throws {
        if let runner {
            for process in processes where !process.hasExited {
                process.signal(SIGCONT)
                process.signal(SIGTERM)
            }
            for process in processes where process.waitForExit(upTo: .seconds(30)) == nil {
                process.signal(SIGKILL)
                _ = process.waitForExit()
            }
            XCTAssertTrue(waitUntil { EndToEnd.markedProcesses(self.marker).isEmpty },
                          "left behind: \(EndToEnd.markedProcesses(marker))")
            await runner.shutdown()
        }
        if !databaseName.isEmpty, server != nil {
            // Whatever the test did, every run's kept counts are its tasks'.
            do { try await FleetTestCase.admin(databaseURL, FleetTestCase.tallyCheck) } catch { XCTFail("\(error)") }
        }
        if !databaseName.isEmpty {
            try? await FleetTestCase.admin(adminURL, "DROP DATABASE IF EXISTS \(databaseName) WITH (FORCE)")
        }
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
        try await super.tearDown()
    }

    // MARK: Processes

    /// Starts another server on the test's database (after the first was
    /// killed); the API calls go to it from here on.
    func restartServer(_ extra: [String] = []) throws {
        server = try startServer(extra)
    }

    /// Runs `scripts/pg-cluster ARGUMENTS` (the cluster of CORRAL_TEST_PG_DIR)
    /// as a job of the test's runner (which reaps every orphan of this
    /// process, so no other way of waiting for a child is safe here).
    func pgCluster(_ arguments: [String]) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var spec = JobSpec(.executable(root.appendingPathComponent("scripts/pg-cluster").path, arguments: arguments))
        // A database started again outlives the test (scripts/test stops it
        // last): it must carry neither the run's nor the test's marker, and
        // it is left running when the job ends.
        spec.environment = .inherit(updating: ["CORRAL_TEST_RUN": nil, "CORRAL_E2E_MARKER": nil])
        spec.lingering = .leaveRunning
        spec.timeout = .seconds(120)
        let result = Mutex<JobResult?>(nil)
        let done = DispatchSemaphore(value: 0)
        _ = try runner.submit(spec, onCompletion: { finished in
            result.withLock { $0 = finished }
            done.signal()
        })
        done.wait()
        guard let finished = result.withLock({ $0 }), finished.outcome == .exited(0) else {
            let text = result.withLock { $0.map { "\($0.outcome) \(String(decoding: $0.stderr.bytes, as: UTF8.self))" } } ?? "no result"
            throw FleetTestFailure("scripts/pg-cluster \(arguments.joined(separator: " ")) failed: \(text)")
        }
    }

    func startServer(_ extra: [String] = []) throws -> FleetProcess {
        let process = try launch(["server", "--db", databaseURL, "--listen", "127.0.0.1:0", "--agent-ttl", agentTTL,
                                  "--log-level", "notice"] + extra, directory: scratch.path)
        guard process.waitUntilListening() else {
            throw FleetTestFailure("the server did not start: \(process.output)")
        }
        return process
    }

    /// Starts an agent named `name` in the fleet, in a directory of its own
    /// (its jobs' working directory is named after it), and waits until
    /// the server lists it up.
    @discardableResult
    func startAgent(_ name: String, labels: [String] = [], database: String? = nil, extra: [String] = [],
                    idlePoll: String = "300ms", wait: Bool = true, directoryName: String? = nil) throws -> FleetProcess {
        let directory = scratch.appendingPathComponent(directoryName ?? name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = ["agent", "--listen", "127.0.0.1:0", "--data-dir", directory.appendingPathComponent("data").path,
                         "--flush-interval", "50ms", "--server-db", database ?? databaseURL, "--name", name,
                         "--fleet-poll", "100ms", "--fleet-idle-poll", idlePoll, "--shutdown-grace", "1s"]
        for label in labels { arguments += ["--label", label] }
        arguments += extra
        let process = try launch(arguments, directory: directory.path)
        guard wait else { return process }
        guard process.waitUntilListening() else {
            throw FleetTestFailure("agent \(name) did not start: \(process.output)")
        }
        XCTAssertTrue(waitUntil { self.agentState(name) == "up" }, "agent \(name) did not join: \(process.output)")
        return process
    }

    func launch(_ arguments: [String], directory: String) throws -> FleetProcess {
        let process = try FleetProcess(runner: runner, arguments: arguments, marker: marker, workingDirectory: directory)
        processes.append(process)
        return process
    }

    // MARK: API

    func request(_ method: String, _ path: String, json body: String? = nil, port: UInt16? = nil,
                 headers: [String: String] = [:]) throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? server.port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let answer = Mutex<(Int, Data)?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, _ in
            answer.withLock { $0 = ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()) }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 35) == .success, let (status, data) = answer.withLock({ $0 }) else {
            throw FleetTestFailure("\(method) \(path): no answer")
        }
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, json)
    }

    /// Creates a run; returns its id.
    func createRun(_ body: String, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let (status, json) = try request("POST", "/v1/runs", json: body)
        XCTAssertEqual(status, 201, "\(json)", file: file, line: line)
        guard let id = json["id"] as? Int else { throw FleetTestFailure("no run id in \(json)") }
        return id
    }

    func runView(_ id: Int) throws -> [String: Any] { try request("GET", "/v1/runs/\(id)").json }

    /// Waits until the run is finished; returns it.
    func waitForRun(_ id: Int, upTo limit: Duration = .seconds(60), file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        var view: [String: Any] = [:]
        let done = waitUntil(upTo: limit) {
            view = (try? self.runView(id)) ?? [:]
            return !(view["finished_at"] is NSNull) && view["finished_at"] != nil
        }
        XCTAssertTrue(done, "run \(id) did not finish: \(view)", file: file, line: line)
        return view
    }

    /// The run's tasks by host.
    func tasks(_ view: [String: Any]) -> [String: [String: Any]] {
        var byHost: [String: [String: Any]] = [:]
        for task in view["tasks"] as? [[String: Any]] ?? [] {
            if let host = task["host"] as? String { byHost[host] = task }
        }
        return byHost
    }

    /// A task's shipped output after chunk `after`.
    func output(_ run: Int, _ host: String, stream: String = "combined", after: Int = 0) throws -> [String: Any] {
        let (status, json) = try request("GET", "/v1/runs/\(run)/tasks/\(host)/output?stream=\(stream)&after=\(after)")
        XCTAssertEqual(status, 200, "\(json)")
        return json
    }

    func agentState(_ name: String) -> String? {
        let agents = (try? request("GET", "/v1/agents").json["agents"] as? [[String: Any]]) ?? nil
        return agents?.first { $0["name"] as? String == name }?["state"] as? String
    }

    /// Marked processes that are neither a server, an agent, nor a
    /// runner's watchdog: what jobs left.
    func jobProcesses() -> [String] {
        let ours = Set(processes.map { "\($0.pid)" })
        return EndToEnd.markedProcesses(marker).filter { line in
            !ours.contains(String(line.split(separator: " ")[0])) && !line.hasSuffix(" corral-watchdog")
        }
    }

    func waitUntil(upTo limit: Duration = .seconds(30), _ condition: () -> Bool) -> Bool {
        EndToEnd.waitUntil(upTo: limit, polling: 50_000, condition)
    }

    /// `admin` on this test's cluster, from synchronous test code.
    func awaitAdmin(_ sql: String) throws { try awaitStatement(sql, on: adminURL) }

    /// `sql` on this test's own database, from synchronous test code.
    func awaitSQL(_ sql: String) throws { try awaitStatement(sql, on: databaseURL) }

    private func awaitStatement(_ sql: String, on url: String) throws {
        let failure = Mutex<Error?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await FleetTestCase.admin(url, sql) } catch { failure.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// One statement on the cluster's admin database. Unreachable while
    /// CORRAL_TEST_PG_URL is set: the test fails.
    static func admin(_ url: String, _ sql: String) async throws {
        let components = URLComponents(string: url)
        guard let components, let host = components.host, let user = components.user else {
            throw FleetTestFailure("CORRAL_TEST_PG_URL is not a postgres:// URL: \(url)")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: String(components.path.dropFirst()), tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        var logger = Logger(label: "fleet-tests")
        logger.logLevel = .critical
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        // The pool retries a refused connection without end: bounded here.
        let done = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await client.run()
                return false
            }
            group.addTask {
                try await client.query(PostgresQuery(unsafeSQL: sql))
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return false
            }
            defer { group.cancelAll() }
            do {
                return try await group.next() ?? false
            } catch {
                throw FleetTestFailure("CORRAL_TEST_PG_URL is set but PostgreSQL did not take \"\(sql)\": \(String(reflecting: error))")
            }
        }
        guard done else {
            throw FleetTestFailure("CORRAL_TEST_PG_URL is set but PostgreSQL did not answer \"\(sql)\" within 20 s")
        }
    }
}

struct FleetTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A running `corral server` or `corral agent`.
typealias FleetProcess = CorralProcess
