import CorralAgent
import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO

/// The read side the page needs, filtered, sorted and paged in PostgreSQL:
/// `GET /v1/runs` with filters, and `GET /v1/runs/{id}/tasks`, a run's
/// tasks without their result bodies (a run of 1,000 hosts is a page of
/// rows, not 1,000 results). Every query parameter is checked here, at the
/// edge, before anything reaches the database; each answer is one
/// statement, so its counts and its rows are one snapshot and add up.
struct FleetQueries: Sendable {
    let link: RenewingClient
    let logger: Logger
    /// The database client of the moment (replaced after an outage).
    var client: PostgresClient { link.client }

    func add(to router: Router<BasicRequestContext>) {
        router.get("v1/runs/:id/tasks") { request, context in try await tasks(request, context: context) }
    }

    // MARK: GET /v1/runs

    func runs(_ request: Request) async throws -> Response {
        let query = try RunListQuery(request.uri.queryParameters)
        let text = try await database("list runs") { [client] in
            try await FleetQueries.first(try await client.query("""
                SELECT json_build_object('runs', coalesce(json_agg(x.v ORDER BY x.run_id DESC), '[]'),
                                         'next', CASE WHEN count(*) = \(query.limit) THEN min(x.run_id)::text END)::text
                  FROM (SELECT r.run_id, \(unescaped: FleetQueries.runSummary) AS v FROM run r
                         WHERE r.run_id < \(query.before)
                           AND (NOT \(query.filtersState) OR r.state = ANY(\(query.states)::text[])
                                OR (\(query.active) AND r.finished_at IS NULL)
                                OR (\(query.finished) AND r.finished_at IS NOT NULL)
                                OR (\(query.errors) AND EXISTS (SELECT 1 FROM run_tally c WHERE c.run_id = r.run_id
                                                                  AND c.error AND c.n > 0)))
                           AND (\(query.pattern)::text IS NULL OR r.name ILIKE \(query.pattern) ESCAPE '\\'
                                OR \(unescaped: FleetQueries.command) ILIKE \(query.pattern) ESCAPE '\\')
                         ORDER BY r.run_id DESC LIMIT \(query.limit)) x
                """))
        }
        return json(text ?? "{\"runs\":[],\"next\":null}")
    }

    // MARK: GET /v1/runs/{id}/tasks

    func tasks(_ request: Request, context: BasicRequestContext) async throws -> Response {
        guard let given = context.parameters.get("id"), let run = Int64(given), run > 0 else {
            throw APIError(.notFound, "not_found", "no run \(context.parameters.get("id")?.prefix(40) ?? "")")
        }
        let query = try TaskListQuery(request.uri.queryParameters)
        let key = query.sort.key
        let text = try await database("list the tasks of run \(run)") { [client] in
            try await FleetQueries.first(try await client.query("""
                WITH m AS (SELECT t.*, \(unescaped: key) AS k FROM task t
                            WHERE t.run_id = \(run)
                              AND (NOT \(query.filtersState) OR t.state = ANY(\(query.states)::text[])
                                   OR (\(query.errors) AND fleet_is_error(t.state, t.exit_code))
                                   OR (\(query.ok) AND t.state = 'exited' AND t.exit_code = 0))
                              AND (\(query.pattern)::text IS NULL OR t.host ILIKE \(query.pattern) ESCAPE '\\'
                                   OR t.note ILIKE \(query.pattern) ESCAPE '\\')),
                     page AS (SELECT * FROM m WHERE (m.k, m.host) > (\(query.after.key), \(query.after.host))
                               ORDER BY m.k, m.host LIMIT \(query.limit + 1)),
                     shown AS (SELECT * FROM page ORDER BY page.k, page.host LIMIT \(query.limit))
                SELECT CASE WHEN EXISTS (SELECT 1 FROM run WHERE run_id = \(run)) THEN json_build_object(
                  'run', (SELECT \(unescaped: FleetQueries.runSummary)
                                 \(unescaped: query.withJob ? "|| jsonb_build_object('job', r.job::jsonb)" : "")
                            FROM run r WHERE r.run_id = \(run)),
                  'matched', (SELECT count(*) FROM m),
                  'now', fleet_time(now()),
                  'tasks', (SELECT coalesce(json_agg(json_build_object(
                              'host', s.host, 'state', s.state, 'exit_code', s.exit_code, 'signal', s.signal,
                              'duration_s', s.duration_s,
                              'elapsed_s', CASE WHEN s.state = 'running' THEN extract(epoch FROM now() - s.claimed_at) END,
                              'note', s.note, 'error', fleet_is_error(s.state, s.exit_code),
                              'queued_at', fleet_time(s.queued_at), 'claimed_at', fleet_time(s.claimed_at),
                              'finished_at', fleet_time(s.finished_at), 'reconciled_at', fleet_time(s.reconciled_at),
                              'cancel_requested', s.cancel_requested_at IS NOT NULL) ORDER BY s.k, s.host), '[]')
                              FROM shown s),
                  'next', (SELECT CASE WHEN (SELECT count(*) FROM page) > \(query.limit)
                                       THEN (SELECT s.k || ':' || s.host FROM shown s ORDER BY s.k DESC, s.host DESC LIMIT 1) END)
                )::text END
                """))
        }
        guard let text else {
            throw APIError(.notFound, "not_found", "no run \(run)")
        }
        return json(text)
    }

    // MARK: Views

    /// A run's job as one line of text: its shell script, or its argv
    /// joined by spaces; at most 500 characters.
    static let command = """
        left(coalesce((r.job::jsonb) ->> 'shell',
                      (SELECT string_agg(e.v, ' ') FROM jsonb_array_elements_text((r.job::jsonb) -> 'argv') AS e(v))), 500)
        """

    /// A run in a list: no results, no job beyond its command's start; its
    /// counts from the tally the task transitions keep (Schema.swift).
    static let runSummary = """
        jsonb_build_object('id', r.run_id, 'name', r.name, 'state', r.state, 'target', r.target,
          'command', \(FleetQueries.command), 'timeout', (r.job::jsonb) ->> 'timeout',
          'max_concurrency', r.max_concurrency, 'max_errors', r.max_errors,
          'created_at', fleet_time(r.created_at), 'finished_at', fleet_time(r.finished_at),
          'duration_s', extract(epoch FROM coalesce(r.finished_at, now()) - r.created_at),
          'rerun_of', r.rerun_of,
          'tasks', (SELECT coalesce(sum(c.n), 0) FROM run_tally c WHERE c.run_id = r.run_id),
          'errors', (SELECT coalesce(sum(c.n), 0) FROM run_tally c WHERE c.run_id = r.run_id AND c.error),
          'failed_exits', (SELECT coalesce(sum(c.n), 0) FROM run_tally c WHERE c.run_id = r.run_id AND c.state = 'exited' AND c.error),
          'counts', (SELECT coalesce(jsonb_object_agg(c.state, c.n), '{}')
                       FROM (SELECT state, sum(n) AS n FROM run_tally WHERE run_id = r.run_id GROUP BY state HAVING sum(n) > 0) c))
        """

    // MARK: Helpers

    private func database<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await FleetAPI.database(what, logger: logger, body)
    }

    private static func first(_ rows: PostgresRowSequence) async throws -> String? {
        var value: String?
        for try await row in rows where value == nil {
            value = try row.decode(String?.self)
        }
        return value
    }

    private func json(_ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}

/// A `q` parameter as an `ILIKE` pattern: the text anywhere, `%`, `_` and
/// `\` taken literally; at most 200 characters.
private func searchPattern(_ query: Parameters) throws(APIError) -> String? {
    guard let given = query.get("q"), !given.isEmpty else { return nil }
    guard given.unicodeScalars.count <= 200, !given.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
        throw APIError(.badRequest, "bad_query", "q: at most 200 characters, no control characters", field: "q")
    }
    var escaped = ""
    for character in given {
        if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
        escaped.append(character)
    }
    return "%" + escaped + "%"
}

/// Refuses a parameter this endpoint does not know (a typo would
/// otherwise be ignored silently and show an unfiltered list).
private func refuseUnknown(_ query: Parameters, known: Set<String>) throws(APIError) {
    for (name, _) in query where !name.isEmpty && !known.contains(String(name)) {
        throw APIError(.badRequest, "bad_query", "unknown parameter \(name.prefix(40)); known: \(known.sorted().joined(separator: ", "))",
                       field: String(name.prefix(40)))
    }
}

/// `GET /v1/runs?state=&q=&limit=&before=`.
struct RunListQuery: Sendable {
    static let runStates = ["running", "stopped", "cancelling", "cancelled", "done"]
    /// Groups: `active` (not finished), `finished`, `errors` (a task counts
    /// as an error).
    static let groups = ["active", "finished", "errors"]

    var states: [String] = []
    var active = false
    var finished = false
    var errors = false
    var pattern: String?
    var limit = 50
    var before = Int64.max

    /// Whether `state` filters at all: a run matches any state or group
    /// listed (`state=active,finished` is every run).
    var filtersState: Bool { !states.isEmpty || active || finished || errors }

    init(_ query: Parameters) throws(APIError) {
        try refuseUnknown(query, known: ["state", "q", "limit", "before", "token"])
        if let given = query.get("state"), !given.isEmpty {
            for name in given.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                switch name {
                case "active": active = true
                case "finished": finished = true
                case "errors": errors = true
                case _ where RunListQuery.runStates.contains(name): states.append(name)
                default:
                    throw APIError(.badRequest, "bad_query", "state: unknown run state \"\(name.prefix(40))\"; one of "
                        + (RunListQuery.runStates + RunListQuery.groups).joined(separator: ", "), field: "state")
                }
            }
        }
        pattern = try searchPattern(query)
        if let given = query.get("limit") {
            guard let n = Int(given), (1...500).contains(n) else {
                throw APIError(.badRequest, "bad_query", "limit: 1 to 500", field: "limit")
            }
            limit = n
        }
        if let given = query.get("before") {
            guard let n = Int64(given), n > 0 else { throw APIError(.badRequest, "bad_query", "before: a run id", field: "before") }
            before = n
        }
    }
}

/// `GET /v1/runs/{id}/tasks?state=&q=&sort=&limit=&after=&job=`.
struct TaskListQuery: Sendable {
    static let taskStates = ["pending", "queued", "running", "exited", "signaled", "timed_out", "cancelled", "failed",
                             "lost", "undelivered", "skipped"]
    /// Groups: `errors` (what counts against max_errors), `ok` (exited 0),
    /// `active` (pending, queued, running), `final` (the rest).
    static let groups = ["errors", "ok", "active", "final"]

    /// The order, each as an integer key (then the host name), so that a
    /// page ends at a cursor `key:host` and the next starts after it.
    struct Sort: Sendable {
        let name: String
        let key: String

        static let all: [Sort] = [
            Sort(name: "host", key: "0::bigint"),
            // Errors first, then running, waiting, not run, fine.
            Sort(name: "state", key: """
                (CASE WHEN fleet_is_error(t.state, t.exit_code) THEN 0 WHEN t.state = 'running' THEN 1
                      WHEN t.state IN ('pending', 'queued') THEN 2 WHEN t.state IN ('cancelled', 'undelivered', 'skipped') THEN 3
                      ELSE 4 END)::bigint
                """),
            // Running tasks first, the longest running first (by their
            // claim time, which does not move between two pages), then the
            // finished ones longest first, then those without a duration.
            Sort(name: "duration", key: """
                (CASE WHEN t.state = 'running' AND t.claimed_at IS NOT NULL
                        THEN (extract(epoch FROM t.claimed_at) * 1000)::bigint - 4000000000000000000
                      WHEN t.duration_s IS NOT NULL THEN -(t.duration_s * 1000)::bigint
                      ELSE 1 END)
                """),
            // Highest exit code first, none last.
            Sort(name: "exit", key: "(-coalesce(t.exit_code::bigint, -1))"),
        ]
    }

    struct Cursor: Sendable {
        var key: Int64 = Int64.min
        var host = ""
    }

    var states: [String] = []
    var errors = false
    var ok = false
    var pattern: String?
    var sort = Sort.all[0]
    var limit = 200
    var after = Cursor()
    var withJob = false

    /// Whether `state` filters at all.
    var filtersState: Bool { !states.isEmpty || errors || ok }

    init(_ query: Parameters) throws(APIError) {
        try refuseUnknown(query, known: ["state", "q", "sort", "limit", "after", "job", "token"])
        if let given = query.get("state"), !given.isEmpty {
            for name in given.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                switch name {
                case "errors": errors = true
                case "ok": ok = true
                case "active": states += ["pending", "queued", "running"]
                case "final": states += TaskListQuery.taskStates.filter { !["pending", "queued", "running"].contains($0) }
                case _ where TaskListQuery.taskStates.contains(name): states.append(name)
                default:
                    throw APIError(.badRequest, "bad_query", "state: unknown task state \"\(name.prefix(40))\"; one of "
                        + (TaskListQuery.taskStates + TaskListQuery.groups).joined(separator: ", "), field: "state")
                }
            }
        }
        pattern = try searchPattern(query)
        if let given = query.get("sort") {
            guard let found = Sort.all.first(where: { $0.name == given }) else {
                throw APIError(.badRequest, "bad_query", "sort: one of " + Sort.all.map(\.name).joined(separator: ", "), field: "sort")
            }
            sort = found
        }
        if let given = query.get("limit") {
            guard let n = Int(given), (1...1000).contains(n) else {
                throw APIError(.badRequest, "bad_query", "limit: 1 to 1000", field: "limit")
            }
            limit = n
        }
        if let given = query.get("after") {
            // `next` of the previous page: KEY:HOST.
            let parts = given.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].count <= 20, let key = Int64(parts[0]), AgentName.isValid(String(parts[1])) else {
                throw APIError(.badRequest, "bad_query", "after: the next of the previous page (KEY:HOST)", field: "after")
            }
            after = Cursor(key: key, host: String(parts[1]))
        }
        if let given = query.get("job") {
            guard given == "1" || given == "0" else {
                throw APIError(.badRequest, "bad_query", "job: 1 (include the run's job spec) or 0", field: "job")
            }
            withJob = given == "1"
        }
    }
}
