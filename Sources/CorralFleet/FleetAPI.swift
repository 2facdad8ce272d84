import CorralAgent
import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO

/// The server's `/v1` routes. Answers are JSON built by PostgreSQL
/// (`json_build_object`) from one read; writes are one transaction each.
struct FleetAPI: Sendable {
    let link: RenewingClient
    let logger: Logger
    let maxBodyBytes: Int
    let streams = FleetOutputEvents.Count()
    /// The database client of the moment (replaced after an outage).
    var client: PostgresClient { link.client }

    func add(to router: Router<BasicRequestContext>) {
        router.get("healthz") { _, _ in try await health() }
        let runs = router.group("v1/runs")
        runs.post { request, _ in try await create(request) }
        runs.get { request, _ in try await FleetQueries(link: link, logger: logger).runs(request) }
        runs.get(":id") { _, context in try await show(try runID(context)) }
        runs.delete(":id") { _, context in try await cancel(try runID(context), host: nil) }
        runs.post(":id/rerun") { request, context in try await rerun(request, of: try runID(context)) }
        runs.get(":id/tasks/:host/output") { request, context in
            try await output(request, run: try runID(context), host: try context.parameters.require("host"))
        }
        runs.get(":id/tasks/:host/events") { request, context in
            try await FleetOutputEvents(api: self).response(request, run: try runID(context), host: try context.parameters.require("host"))
        }
        runs.delete(":id/tasks/:host") { _, context in
            try await cancel(try runID(context), host: try context.parameters.require("host"))
        }
        router.get("v1/agents") { _, _ in try await agents() }
    }

    // MARK: Runs

    private func create(_ request: Request) async throws -> Response {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the run as 'Content-Type: application/json'")
        }
        var request = request
        let body = Array(try await request.collectBody(upTo: maxBodyBytes).readableBytesView)
        let run = try RunRequest(body: body)
        let key = try IdempotencyKey.read(request.headers)
        let requestText = String(decoding: body, as: UTF8.self)
        let created = try await database("create a run") {
            try await client.withTransaction(logger: logger) { connection in
                try await FleetAPI.insert(run, key: key, requestText: requestText, connection: connection, logger: logger)
            }
        }
        switch created {
        case .failure(let error): throw error
        case .success(let (id, replayed)):
            var response = try await show(id)
            response.status = replayed ? .ok : .created
            response.headers[.location] = "/v1/runs/\(id)"
            return response
        }
    }

    /// Resolves the target (frozen from here on: hosts that join later
    /// are not in the run), then inserts the run and its tasks and opens
    /// the window, in the caller's transaction.
    /// `requestText`: the create request (a re-run passes its run's);
    /// `idempotentText`: what a replay with the same key must match.
    static func insert(_ run: RunRequest, key: String?, requestText: String, idempotentText: String? = nil, rerunOf: Int64? = nil,
                       connection: PostgresConnection, logger: Logger) async throws -> Result<(Int64, Bool), APIError> {
        let idempotentText = idempotentText ?? requestText
        if let key {
            let rows = try await connection.query("SELECT run_id, idempotent_request FROM run WHERE idempotency_key = \(key)", logger: logger)
            for try await (id, earlier) in rows.decode((Int64, String?).self) {
                guard earlier == idempotentText else {
                    return .failure(APIError(.conflict, "idempotency_conflict",
                                             "Idempotency-Key was already used for run \(id) with a different request"))
                }
                return .success((id, true))
            }
        }
        let matched: PostgresRowSequence
        switch run.target {
        case .hosts(let names):
            matched = try await connection.query("SELECT agent_id, name FROM agent WHERE name = ANY(\(names)) ORDER BY name", logger: logger)
        case .labels(let labels):
            let wanted = JSONValue.object(labels.mapValues { .string($0) }).jsonText
            matched = try await connection.query("SELECT agent_id, name FROM agent WHERE labels @> \(wanted)::jsonb ORDER BY name", logger: logger)
        case .all:
            matched = try await connection.query("SELECT agent_id, name FROM agent ORDER BY name", logger: logger)
        }
        var ids: [Int64] = []
        var names: [String] = []
        for try await (id, name) in matched.decode((Int64, String).self) {
            ids.append(id)
            names.append(name)
        }
        if case .hosts(let wanted) = run.target, names.count < wanted.count {
            let missing = Set(wanted).subtracting(names).sorted()
            return .failure(APIError(.badRequest, "unknown_hosts",
                                     "no agent registered as \(missing.prefix(20).joined(separator: ", "))\(missing.count > 20 ? ", …" : "")",
                                     field: "target.hosts"))
        }
        guard !ids.isEmpty else {
            return .failure(APIError(.badRequest, "no_hosts", "no registered agent matches the target", field: "target"))
        }
        let window = run.maxConcurrency?.resolved(hosts: ids.count, roundingUp: true) ?? ids.count
        let budget = run.maxErrors?.resolved(hosts: ids.count, roundingUp: false) ?? ids.count
        // A lost race on the same key waits for the first insert's commit,
        // then finds its run.
        var runID: Int64?
        let storedIdempotent: String? = key == nil ? nil : idempotentText
        let inserted = try await connection.query("""
            INSERT INTO run (name, job, target, max_concurrency, max_errors, idempotency_key, request, idempotent_request,
                             rerun_of, deadline_s)
            VALUES (\(run.name), \(run.jobJSON), \(run.targetJSON)::jsonb, \(window), \(budget), \(key), \(requestText),
                    \(storedIdempotent), \(rerunOf), \(run.deadlineSeconds))
            ON CONFLICT (idempotency_key) DO NOTHING RETURNING run_id
            """, logger: logger)
        for try await id in inserted.decode(Int64.self) { runID = id }
        guard let runID else {
            return try await insert(run, key: key, requestText: requestText, idempotentText: idempotentText, rerunOf: rerunOf,
                                    connection: connection, logger: logger)
        }
        _ = try await connection.query("""
            INSERT INTO task (run_id, agent_id, host, ordinal)
            SELECT \(runID), a.agent_id, a.name, row_number() OVER (ORDER BY a.name)
              FROM agent a WHERE a.agent_id = ANY(\(ids))
            """, logger: logger).collect()
        _ = try await connection.query("SELECT fleet_output_partition(day) FROM run WHERE run_id = \(runID)", logger: logger).collect()
        _ = try await connection.query("SELECT fleet_settle(\(runID))", logger: logger).collect()
        return .success((runID, false))
    }

    func show(_ id: Int64) async throws -> Response {
        let text = try await database("read run \(id)") {
            try await FleetAPI.first(try await client.query("SELECT \(unescaped: FleetAPI.runView) FROM run r WHERE r.run_id = \(id)"))
        }
        guard let text else { throw APIError(.notFound, "not_found", "no run \(id)") }
        return json(text)
    }

    private func cancel(_ id: Int64, host: String?) async throws -> Response {
        let touched = try await database("cancel") {
            try await FleetAPI.first(try await client.query("SELECT fleet_cancel(\(id), \(host)::text)"), as: Int.self)
        }
        guard let touched, touched >= 0 else {
            throw APIError(.notFound, "not_found", host.map { "run \(id) has no task on \($0)" } ?? "no run \(id)")
        }
        var response = try await show(id)
        response.status = .accepted
        return response
    }

    /// A task's shipped output after a chunk (`after`, 0 for the start):
    /// `{"output"` (or `"output_base64"` when not UTF-8)`, "next", "final",
    /// "truncated_bytes"}`; poll again with `after=next` for a live tail.
    private func output(_ request: Request, run: Int64, host: String) async throws -> Response {
        let query = request.uri.queryParameters
        let stream = query.get("stream") ?? "combined"
        guard ["stdout", "stderr", "combined"].contains(stream) else {
            throw APIError(.badRequest, "bad_query", "stream: expected stdout, stderr or combined", field: "stream")
        }
        var after = 0
        if let given = query.get("after") {
            guard let n = Int(given), n >= 0, n <= Int(Int32.max) else {
                throw APIError(.badRequest, "bad_query", "after: a chunk number (next of the previous answer)", field: "after")
            }
            after = n
        }
        let start = after
        let read = try await database("read output") { [client] () -> (final: Bool, chunks: [TaskOutput.Chunk])? in
            guard let final = try await TaskOutput.isFinal(client, run: run, host: host) else { return nil }
            return (final, try await TaskOutput.chunks(client, run: run, host: host, after: start, limit: 1000))
        }
        guard let read else { throw APIError(.notFound, "not_found", "run \(run) has no task on \(host)") }
        var bytes: [UInt8] = []
        var truncated: Int?
        var next = after
        for chunk in read.chunks {
            next = chunk.seq
            if let dropped = chunk.truncatedBytes {
                truncated = dropped
            } else if stream == "combined" || chunk.stream == stream || (stream == "stdout" && chunk.stream == "combined") {
                bytes += chunk.bytes
            }
        }
        var json = JSONWriter()
        if let text = String(validating: bytes, as: UTF8.self) {
            json.add("output", text)
        } else {
            json.add("output_base64", Data(bytes).base64EncodedString())
        }
        json.add("next", next)
        // Final once the task is and nothing more is left to read.
        json.add("final", read.final && read.chunks.count < 1000)
        json.add("truncated_bytes", truncated)
        return self.json(json.text)
    }

    // MARK: Agents

    private func agents() async throws -> Response {
        let text = try await database("list agents") {
            try await FleetAPI.first(try await client.query("""
                SELECT json_build_object('agents', coalesce(json_agg(json_build_object(
                         'name', a.name, 'state', a.state, 'labels', a.labels, 'version', a.version,
                         'seen_at', fleet_time(a.seen_at), 'registered_at', fleet_time(a.registered_at),
                         'running', (SELECT count(*) FROM task t WHERE t.agent_id = a.agent_id AND t.state = 'running'))
                         ORDER BY a.name), '[]'))::text
                  FROM agent a
                """))
        }
        return json(text ?? "{\"agents\":[]}")
    }

    private func health() async throws -> Response {
        _ = try await database("health check") {
            try await FleetAPI.first(try await client.query("SELECT 1"), as: Int.self)
        }
        return json("{\"ok\":true}")
    }

    // MARK: Views

    /// A run's (`r`) error count and its counts by state, from the tally
    /// the task transitions keep (Schema.swift).
    static let tallies = """
        'errors', (SELECT coalesce(sum(c.n), 0) FROM run_tally c WHERE c.run_id = r.run_id AND c.error),
        'counts', (SELECT coalesce(json_object_agg(c.state, c.n ORDER BY c.state), '{}')
                     FROM (SELECT state, sum(n) AS n FROM run_tally WHERE run_id = r.run_id GROUP BY state HAVING sum(n) > 0) c)
        """

    static let runView = """
        json_build_object('id', r.run_id, 'name', r.name, 'state', r.state, 'target', r.target, 'job', r.job::json,
          'max_concurrency', r.max_concurrency, 'max_errors', r.max_errors, 'rerun_of', r.rerun_of,
          'created_at', fleet_time(r.created_at), 'finished_at', fleet_time(r.finished_at),
          \(tallies),
          'tasks', (SELECT coalesce(json_agg(\(taskObject) ORDER BY t.ordinal), '[]')
                      FROM task t WHERE t.run_id = r.run_id))::text
        """

    /// One task (`t`, of run `r`) as the run view lists it.
    static let taskObject = """
        json_build_object(
          'host', t.host, 'id', r.run_id || '/' || t.host, 'state', t.state, 'attempt_id', t.attempt_id,
          'exit_code', t.exit_code, 'signal', t.signal, 'duration_s', t.duration_s, 'note', t.note,
          'queued_at', fleet_time(t.queued_at), 'claimed_at', fleet_time(t.claimed_at),
          'finished_at', fleet_time(t.finished_at), 'reconciled_at', fleet_time(t.reconciled_at),
          'cancel_requested', t.cancel_requested_at IS NOT NULL,
          'result', t.result::json)
        """

    static let taskView = taskObject + "::text"

    // MARK: Helpers

    func runID(_ context: BasicRequestContext) throws -> Int64 {
        let text = try context.parameters.require("id")
        guard let id = Int64(text), id > 0 else { throw APIError(.notFound, "not_found", "no run \(text)") }
        return id
    }

    func database<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await FleetAPI.database(what, logger: logger, body)
    }

    /// A database call; a failure is logged with its detail and answered
    /// 503 with a plain message (no SQL in an API answer).
    static func database<T: Sendable>(_ what: String, logger: Logger,
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withTimeLimit(.seconds(15), what, body)
        } catch let error as APIError {
            throw error
        } catch {
            logger.error("database: \(what) failed", metadata: ["error": "\(String(reflecting: error))"])
            throw APIError(.serviceUnavailable, "database_unavailable", "\(what): the database did not answer; the server's log has the detail")
        }
    }

    static func first<T: PostgresDecodable & Sendable>(_ rows: PostgresRowSequence, as type: T.Type = String.self) async throws -> T?
    where T._DecodableType == T {
        var value: T?
        for try await row in rows where value == nil {
            value = try row.decode(T?.self)
        }
        return value
    }

    func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}
