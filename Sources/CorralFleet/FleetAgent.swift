import CorralAgent
import CorralFormat
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// What `corral agent --server-db` is told about its fleet.
package struct FleetAgentConfiguration: Sendable {
    package var database: DatabaseURL
    /// The agent's name in the fleet (its host), unique among the agents.
    package var name: String
    package var labels: [String: String] = [:]
    /// Poll interval while tasks run or were just taken, and the longest
    /// one it backs off to when idle (each with ±20 % jitter).
    package var busyPoll: Duration = .seconds(1)
    package var idlePoll: Duration = .seconds(5)
    /// While the database fails, a fresh connection pool this often
    /// (`RenewingClient`): the agent is back within about a quarter of it
    /// once the database is.
    package var reconnect: Duration = .seconds(20)
    package static let reconnectRange: ClosedRange<Duration> = .seconds(1) ... .seconds(300)
    /// Output bytes a task ships to the database at most (its result, at
    /// the end, still holds the tail; the journal holds all).
    package var outputCap = 1 << 20

    package init(database: DatabaseURL, name: String) {
        self.database = database
        self.name = name
    }

    package func validate() throws(FleetError) {
        guard AgentName.isValid(name) else { throw FleetError("--name: \(AgentName.rule), got \"\(name)\"") }
        guard busyPoll >= .milliseconds(10), idlePoll >= busyPoll, idlePoll <= .seconds(300) else {
            throw FleetError("the poll intervals must be from 10ms to 5m, the idle one at least the busy one")
        }
        guard FleetAgentConfiguration.reconnectRange.contains(reconnect) else {
            throw FleetError("--fleet-reconnect must be from 1s to 5m")
        }
        guard (0...(1 << 30)).contains(outputCap) else { throw FleetError("--fleet-output-cap must be at most 1GiB") }
    }

    /// The agent's side of the fleet, as a companion of its HTTP service.
    package func companion(version: String) -> @Sendable (LocalJobs, Logger) -> any Service {
        { jobs, logger in FleetAgent(configuration: self, version: version, jobs: jobs, logger: logger) }
    }
}

/// The agent's link to the fleet: registers, heartbeats (the reply
/// carries cancellations), claims its own queued tasks for its free
/// slots, submits them to the agent's own jobs (journaled under the
/// attempt id first), and reports each outcome fenced by that attempt id.
/// Every database call is one autocommit statement. While the database is
/// unreachable, jobs run on and their outcomes wait here (and in the
/// journal) until it is back.
final class FleetAgent: Service, Sendable {
    let configuration: FleetAgentConfiguration
    let version: String
    let jobs: LocalJobs
    let logger: Logger
    /// A fresh id per start: the server can tell a restarted agent.
    let boot = UUID()
    /// The loop's own state (one task touches it).
    private let state = LockedState()

    /// One attempt this process knows: its run, its local job once
    /// submitted, and its outcome once final and not yet recorded.
    struct Attempt: Sendable {
        var run: Int64
        var localID: String?
        var outcome: Outcome?
        /// The last journal chunk shipped, the bytes shipped, and the
        /// bytes left out over the cap.
        var shippedSeq = 0
        var shippedBytes = 0
        var droppedBytes = 0
        /// The server asked (in a heartbeat reply) to cancel it.
        var cancelRequested = false
    }

    struct Outcome: Sendable {
        var state: String
        var exitCode: Int32?
        var signal: String?
        var durationSeconds: Double?
        var note: String?
        var resultJSON: String?
    }

    init(configuration: FleetAgentConfiguration, version: String, jobs: LocalJobs, logger: Logger) {
        self.configuration = configuration
        self.version = version
        self.jobs = jobs
        var logger = logger
        logger[metadataKey: "fleet"] = "\(configuration.name)"
        self.logger = logger
    }

    func run() async throws {
        var quiet = logger
        quiet.logLevel = .critical
        let link = RenewingClient(renewAfter: configuration.reconnect) { [configuration, quiet] in
            configuration.database.client(connections: 2, logger: quiet)
        }
        defer { link.close() }
        var agentID: Int64?
        var adopted = false
        var lastAdoption = ContinuousClock.now
        var interval = configuration.busyPoll
        var failing: String?
        /// The journal of another agent holding this one's name, once told.
        var heldBy: String?
        /// Another process registered with this agent's journal (CR002).
        var standingAside = false
        /// The row this agent last registered as (its name's, for good).
        var knownID: Int64?
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            var busy = false
            let client = link.client
            let passStarted = ContinuousClock.now
            do {
                // Without its name (another holds it, or this one stands
                // aside), the agent still reports what it ran itself:
                // `fleet_finish` records only over the attempt's own id.
                if let known = knownID, agentID == nil || standingAside {
                    busy = try await report(client, agent: known)
                    try await ship(client, agent: known, final: false)
                }
                if standingAside, let known = knownID {
                    // Back once the process that displaced it is silent past
                    // the TTL (the reaper called the row down).
                    guard try await isDown(client, agent: known) else { throw StandingAside() }
                    logger.notice("the process that took this agent's name is down; registering again")
                    standingAside = false
                    agentID = nil
                }
                let id: Int64
                if let agentID { id = agentID } else {
                    id = try await register(client)
                    agentID = id
                    knownID = id
                    heldBy = nil
                    logger.notice("joined the fleet", metadata: ["db": "\(configuration.database)", "agent_id": "\(id)"])
                }
                // First, whether the name is still this agent's (it raises
                // CR001 or CR002 if not): nothing is adopted or claimed else.
                try await heartbeat(client, agent: id)
                if !adopted {
                    try await adopt(client, agent: id, includingLost: true)
                    adopted = true
                    lastAdoption = .now
                } else if ContinuousClock.now - lastAdoption > FleetAgent.adoptionInterval {
                    // A claim cut off by the time limit may commit after the
                    // adoption that followed it: found here, within this bound.
                    try await adopt(client, agent: id, includingLost: false)
                    lastAdoption = .now
                }
                busy = try await report(client, agent: id) || busy
                busy = try await claim(client, agent: id) || busy
                try await ship(client, agent: id, final: false)
                busy = busy || !state.attempts.isEmpty
                link.succeeded()
                if let problem = failing {
                    logger.notice("the database calls work again", metadata: ["was": "\(problem)"])
                    failing = nil
                }
            } catch let held as NameHeld {
                if heldBy != held.holder { logger.error("\(held)") }
                heldBy = held.holder
                agentID = nil
                adopted = false
            } catch is StandingAside {
                link.succeeded()
            } catch where DatabaseURL.sqlState(of: error) == "CR001" {  // `fleet_hold`: the name was taken over
                logger.error("another agent took over the name \"\(configuration.name)\" while this one was down; registering again")
                agentID = nil
                adopted = false
            } catch where DatabaseURL.sqlState(of: error) == "CR002" {
                logger.error("""
                    another process registered as "\(configuration.name)" with this agent's journal since this one did \
                    (a copy of its data directory on another host, or an older corral agent with this --name): this one \
                    takes no fleet task while that one is up; it still reports those it ran. Give each host its own \
                    --name and data directory
                    """)
                standingAside = true
            } catch {
                var problem = DatabaseURL.describe(error)
                if failing == nil {
                    // The pool keeps a failed login to itself (the call just
                    // gets no answer): one straight connection tells why.
                    if DatabaseURL.sqlState(of: error) == nil {
                        do {
                            try await withTimeLimit(.seconds(5), "connecting") { [configuration, logger] in
                                try await configuration.database.probe(logger: logger)
                            }
                        } catch {
                            problem += "; connecting: " + DatabaseURL.describe(error)
                        }
                    }
                    logger.warning("a database call failed; jobs run on, their outcomes are reported once it works again",
                                   metadata: ["error": "\(problem)"])
                }
                failing = problem
                // A claim whose reply was lost is found by the next adoption.
                adopted = false
                if link.failed(error, callStartedAt: passStarted) {
                    logger.info("a fresh database connection pool after \(configuration.reconnect) of failures",
                                metadata: ["renewals": .stringConvertible(link.renewals)])
                }
            }
            interval = busy ? configuration.busyPoll : min(interval * 2, configuration.idlePoll)
            let jittered = interval * Double.random(in: 0.8...1.2)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: jittered) }
        }
        // The agent's jobs were stopped and journaled before this service is
        // asked to stop: one last pass reports their outcomes, bounded.
        if let knownID {
            let client = link.client
            _ = try? await withTimeLimit(.seconds(5), "the last report") { [self] in
                try await report(client, agent: knownID)
            }
        }
    }

    // MARK: Statements

    /// Registers under the name, or throws `NameHeld` while another agent
    /// (another journal) holds it and is not down.
    private func register(_ client: PostgresClient) async throws -> Int64 {
        let labels = JSONValue.object(configuration.labels.mapValues { .string($0) }).jsonText
        let instance = jobs.journalInstance
        let rows = try await limited("register") { [configuration, version, boot] in
            try await client.query("""
                SELECT agent_id, holder, extract(epoch FROM now() - holder_seen_at)::float8
                  FROM fleet_register(\(configuration.name), \(labels)::jsonb, \(version), \(boot), \(instance))
                """).collect()
        }
        guard let row = rows.first else { throw FleetError("register: no answer") }
        let (id, holder, seenAgo) = try row.decode((Int64?, String?, Double?).self)
        if let id { return id }
        throw NameHeld(name: configuration.name, holder: holder ?? "?", seenAgo: seenAgo ?? 0)
    }

    /// Another agent holds this agent's name: this one runs its local jobs
    /// but takes no fleet task until the holder is down (or renamed).
    struct NameHeld: Error, CustomStringConvertible {
        let name: String
        let holder: String
        let seenAgo: Double

        var description: String {
            "another agent (journal \(holder), last seen \(Int(seenAgo.rounded())) s ago) is in the fleet as \"\(name)\"; "
                + "this one joins once the server calls that one down. Give each agent its own --name"
        }
    }

    /// Ends a pass of an agent standing aside after its reports.
    struct StandingAside: Error {}

    /// Whether the reaper called the agent row down.
    private func isDown(_ client: PostgresClient, agent: Int64) async throws -> Bool {
        let rows = try await limited("agent state") {
            try await client.query("SELECT state = 'down' FROM agent WHERE agent_id = \(agent)").collect()
        }
        return try rows.first?.decode(Bool.self) ?? true
    }

    /// At start, and after the database failed: this agent's tasks the
    /// database has running (or lost, not yet reconciled) are matched with
    /// the journal. One the journal finished is reported; one it runs is
    /// followed; one it never took (a claim whose reply was lost, or a
    /// crash between claim and journal) ends `lost`: never run blind.
    private func adopt(_ client: PostgresClient, agent: Int64, includingLost: Bool) async throws {
        let (instance, boot) = (jobs.journalInstance, boot)
        let rows = try await limited("adopt") {
            try await client.query("""
                SELECT run_id, attempt_id, task_state FROM fleet_adoptable(\(agent), \(instance), \(boot), \(includingLost))
                """).collect()
        }
        for row in rows {
            let (run, attempt, taskState) = try row.decode((Int64, UUID, String).self)
            if state.attempts[attempt] != nil { continue }
            switch try await jobs.lookup(attempt: attempt.uuidString) {
            case .final(let final):
                state.attempts[attempt] = Attempt(run: run, localID: final.id, outcome: FleetAgent.outcome(final))
            case .unfinished(let id):
                state.attempts[attempt] = Attempt(run: run, localID: id)
            case .unknown where taskState == "running":
                state.attempts[attempt] = Attempt(run: run, outcome: Outcome(
                    state: "lost", note: "claimed under this agent's name but unknown to its journal (it restarted, the claim's answer was lost, or another process with its name claimed it); not run here"))
            case .unknown:
                continue  // lost, and the journal has nothing to say
            }
        }
    }

    /// One heartbeat; its reply is the running attempts to cancel.
    private func heartbeat(_ client: PostgresClient, agent: Int64) async throws {
        let instance = jobs.journalInstance
        let rows = try await limited("heartbeat") { [boot] in
            try await client.query("SELECT run_id, attempt_id FROM fleet_heartbeat(\(agent), \(boot), \(instance))").collect()
        }
        for row in rows {
            let (_, attempt) = try row.decode((Int64, UUID).self)
            guard let id = state.attempts[attempt]?.localID else { continue }
            state.attempts[attempt]?.cancelRequested = true
            jobs.cancel(id: id)
        }
    }

    /// Reports the outcomes of finished attempts; returns whether any was.
    private func report(_ client: PostgresClient, agent: Int64) async throws -> Bool {
        for (attempt, entry) in state.attempts where entry.outcome == nil {
            if case .final(let final) = try await jobs.lookup(attempt: attempt.uuidString) {
                var outcome = FleetAgent.outcome(final)
                if outcome.state == "cancelled", entry.cancelRequested {
                    outcome.note = "cancelled through the fleet server (DELETE /v1/runs/\(entry.run))"
                }
                state.attempts[attempt]?.outcome = outcome
            }
        }
        var reported = false
        try await ship(client, agent: agent, final: true)
        for (attempt, entry) in state.attempts {
            guard let outcome = entry.outcome else { continue }
            let answer = try await limited("report") {
                try await client.query("""
                    SELECT fleet_finish(\(entry.run), \(agent), \(attempt), \(outcome.state), \(outcome.exitCode.map(Int.init))::int,
                                        \(outcome.signal)::text, \(outcome.durationSeconds)::float8, \(outcome.note)::text,
                                        \(outcome.resultJSON)::text)
                    """).collect()
            }
            let text = try answer.first?.decode(String.self) ?? "?"
            logger.info("task outcome reported", metadata: ["run": "\(entry.run)", "attempt": "\(attempt)",
                                                            "state": "\(outcome.state)", "answer": "\(text)"])
            state.attempts[attempt] = nil
            reported = true
        }
        return reported
    }

    /// Claims this agent's queued tasks for its free slots and submits
    /// them; returns whether any was taken.
    private func claim(_ client: PostgresClient, agent: Int64) async throws -> Bool {
        guard jobs.takesJobs else { return false }
        let free = min(jobs.maxJobs - jobs.unfinished - state.attempts.values.count { $0.localID == nil }, 64)
        guard free > 0 else { return false }
        let attempts = (0..<free).map { _ in UUID() }
        let (instance, boot) = (jobs.journalInstance, boot)
        let rows = try await limited("claim") {
            try await client.query("SELECT run_id, attempt_id, job FROM fleet_claim(\(agent), \(attempts), \(instance), \(boot))").collect()
        }
        for row in rows {
            let (run, attempt, job) = try row.decode((Int64, UUID, String).self)
            state.attempts[attempt] = Attempt(run: run)
            switch await jobs.submit(spec: Array(job.utf8), attempt: attempt.uuidString) {
            case .accepted(let id):
                state.attempts[attempt]?.localID = id
                logger.info("task taken", metadata: ["run": "\(run)", "attempt": "\(attempt)", "job": "\(id)"])
            case .refused(let message):
                state.attempts[attempt]?.outcome = Outcome(state: "failed", note: "the agent refused the job: \(message)")
            }
        }
        return !rows.isEmpty
    }

    /// Ships the journaled output of the attempts this agent follows to
    /// `task_output`, in statements of at most 64 KiB, keyed (task, seq)
    /// so a repeat changes nothing; past `outputCap` a task's chunks are
    /// counted, not shipped. `final`: only the attempts with an outcome,
    /// all of their output, and a truncation record if bytes were left out.
    private func ship(_ client: PostgresClient, agent: Int64, final: Bool) async throws {
        for (attempt, entry) in state.attempts where (entry.outcome != nil) == final {
            guard let id = entry.localID else { continue }
            var cursor = entry
            while true {
                let chunks = try await jobs.chunks(id: id, after: cursor.shippedSeq, limit: 256)
                guard !chunks.isEmpty else { break }
                var seqs: [Int] = []
                var streams: [String] = []
                var data: [String] = []
                var size = 0
                var last = cursor.shippedSeq
                for chunk in chunks {
                    if cursor.shippedBytes + chunk.bytes.count > configuration.outputCap {
                        cursor.droppedBytes += chunk.bytes.count
                    } else {
                        if size > 0, size + chunk.bytes.count > 65_536 { break }
                        seqs.append(chunk.seq)
                        streams.append(chunk.stream)
                        data.append(Data(chunk.bytes).base64EncodedString())
                        size += chunk.bytes.count
                        cursor.shippedBytes += chunk.bytes.count
                    }
                    last = chunk.seq
                }
                if !seqs.isEmpty {
                    let (run, seqList, streamList, dataList) = (entry.run, seqs, streams, data)
                    _ = try await limited("output") {
                        try await client.query("""
                            INSERT INTO task_output (day, run_id, agent_id, seq, stream, data)
                            SELECT r.day, r.run_id, \(agent), u.s, u.st, decode(u.d, 'base64')
                              FROM run r, unnest(\(seqList)::int[], \(streamList)::text[], \(dataList)::text[]) AS u(s, st, d)
                             WHERE r.run_id = \(run)
                            ON CONFLICT DO NOTHING
                            """).collect()
                    }
                }
                cursor.shippedSeq = last
                state.attempts[attempt]?.shippedSeq = cursor.shippedSeq
                state.attempts[attempt]?.shippedBytes = cursor.shippedBytes
                state.attempts[attempt]?.droppedBytes = cursor.droppedBytes
            }
            if final, cursor.droppedBytes > 0 {
                // After every chunk: seq 2^31-1, once, whatever the retries.
                let (run, dropped) = (entry.run, "\(cursor.droppedBytes)")
                _ = try await limited("output") {
                    try await client.query("""
                        INSERT INTO task_output (day, run_id, agent_id, seq, stream, data)
                        SELECT r.day, r.run_id, \(agent), 2147483647, 'truncated', convert_to(\(dropped), 'UTF8')
                          FROM run r WHERE r.run_id = \(run)
                        ON CONFLICT DO NOTHING
                        """).collect()
                }
            }
        }
    }

    // MARK: Helpers

    /// How often the agent's running tasks are matched with what it follows.
    static let adoptionInterval: Duration = .seconds(30)

    static func outcome(_ final: LocalJobs.Final) -> Outcome {
        let state = final.outcome == "failed_to_start" ? "failed" : final.outcome
        return Outcome(state: state, exitCode: final.exitCode, signal: final.signal,
                       durationSeconds: final.durationSeconds, note: final.message, resultJSON: final.resultJSON)
    }

    private func limited<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withTimeLimit(.seconds(5), what, body)
    }
}

/// The fleet agent's attempts, touched by its one loop task only; the
/// mutex keeps the service Sendable.
final class LockedState: Sendable {
    private let value = Mutex<[UUID: FleetAgent.Attempt]>([:])

    var attempts: [UUID: FleetAgent.Attempt] {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
