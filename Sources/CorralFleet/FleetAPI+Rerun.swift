import CorralAgent
import CorralFormat
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO

/// `POST /v1/runs/{id}/rerun`: a new run of the same job, with the same
/// window and error budget, on a chosen part of the run's hosts.
struct RerunRequest: Sendable {
    /// Which of the run's hosts run again.
    enum Hosts: Sendable {
        /// Every host of the run.
        case all
        /// Hosts whose task is an error: exit ≠ 0, signaled, timed out,
        /// failed to start, or lost.
        case failed
        /// Hosts whose task never got an outcome: lost or undelivered.
        case lost
        case named([String])
    }

    var hosts: Hosts
    var name: String?

    static let fields: Set<String> = ["hosts", "name"]

    init(body: [UInt8]) throws(APIError) {
        let members = try RunRequest.object(body, fields: RerunRequest.fields)
        let usage = "hosts: \"all\", \"failed\", \"lost\" or a list of the run's host names"
        switch members["hosts"] {
        case .string("all")?: hosts = .all
        case .string("failed")?: hosts = .failed
        case .string("lost")?: hosts = .lost
        case .array(let items)?:
            var names: [String] = []
            for item in items {
                guard case .string(let name) = item, AgentName.isValid(name) else {
                    throw APIError(.badRequest, "bad_request", usage, field: "hosts")
                }
                names.append(name)
            }
            guard !names.isEmpty, names.count <= RunRequest.maximumHosts, Set(names).count == names.count else {
                throw APIError(.badRequest, "bad_request", "hosts: 1 to \(RunRequest.maximumHosts) distinct names", field: "hosts")
            }
            hosts = .named(names)
        default:
            throw APIError(.badRequest, "bad_request", usage, field: "hosts")
        }
        switch members["name"] {
        case nil: name = nil
        case .string(let text)? where RunRequest.isValidName(text): name = text
        default: throw APIError(.badRequest, "bad_request", RunRequest.nameRule, field: "name")
        }
    }

    /// The condition on the run's tasks (`t`) that picks the hosts.
    var selection: String {
        switch hosts {
        case .all, .named: return "true"
        case .failed: return "fleet_is_error(t.state, t.exit_code)"
        case .lost: return "t.state IN ('lost', 'undelivered')"
        }
    }

    var label: String {
        switch hosts {
        case .all: return "all"
        case .failed: return "failed"
        case .lost: return "lost"
        case .named(let names): return names.count == 1 ? "1 host" : "\(names.count) hosts"
        }
    }
}

extension FleetAPI {
    /// Creates the new run in one transaction with the old run's job and
    /// bounds (percentages count against the new run's hosts); the hosts are
    /// frozen by name, as for any run. The answer is `POST /v1/runs`'s.
    func rerun(_ request: Request, of id: Int64) async throws -> Response {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the re-run as 'Content-Type: application/json'")
        }
        var request = request
        let body = Array(try await request.collectBody(upTo: maxBodyBytes).readableBytesView)
        let rerun = try RerunRequest(body: body)
        let key = try IdempotencyKey.read(request.headers)
        // Stored with the new run for Idempotency-Key replays: the same key
        // means the same re-run of the same run.
        let requestText = "rerun of \(id): " + String(decoding: body, as: UTF8.self)
        let created = try await database("re-run run \(id)") { [client, logger] in
            try await client.withTransaction(logger: logger) { connection in
                try await FleetAPI.insertRerun(rerun, of: id, key: key, requestText: requestText, connection: connection, logger: logger)
            }
        }
        switch created {
        case .failure(let error): throw error
        case .success(let (newID, replayed)):
            var response = try await show(newID)
            response.status = replayed ? .ok : .created
            response.headers[.location] = "/v1/runs/\(newID)"
            return response
        }
    }

    private static func insertRerun(_ rerun: RerunRequest, of id: Int64, key: String?, requestText: String,
                                    connection: PostgresConnection, logger: Logger) async throws -> Result<(Int64, Bool), APIError> {
        var original: (name: String, request: String)?
        for try await row in try await connection.query("SELECT name, request FROM run WHERE run_id = \(id)", logger: logger)
            .decode((String, String).self) {
            original = row
        }
        guard let original else { return .failure(APIError(.notFound, "not_found", "no run \(id)")) }
        var hosts: [String] = []
        let picked = try await connection.query(
            "SELECT t.host FROM task t WHERE t.run_id = \(id) AND \(unescaped: rerun.selection) ORDER BY t.ordinal", logger: logger)
        for try await host in picked.decode(String.self) { hosts.append(host) }
        if case .named(let names) = rerun.hosts {
            let unknown = Set(names).subtracting(hosts).sorted()
            guard unknown.isEmpty else {
                return .failure(APIError(.badRequest, "unknown_hosts",
                                         "run \(id) has no task on \(unknown.prefix(20).joined(separator: ", "))\(unknown.count > 20 ? ", …" : "")",
                                         field: "hosts"))
            }
            hosts = names
        }
        guard !hosts.isEmpty else {
            return .failure(APIError(.badRequest, "no_hosts", "run \(id) has no \(rerun.label) task to run again", field: "hosts"))
        }
        // The original request was validated when the run was created; read
        // again, it gives the job and the bounds as they were asked for.
        var run: RunRequest
        do {
            run = try RunRequest(body: Array(original.request.utf8))
        } catch {
            return .failure(APIError(.conflict, "not_rerunnable", "run \(id)'s request no longer reads as a run: \(error.message)"))
        }
        run.target = .hosts(hosts)
        let suffix = " (re-run of #\(id): \(rerun.label))"
        var name = original.name
        while !name.isEmpty, name.utf8.count + suffix.utf8.count > RunRequest.maximumNameBytes { name.removeLast() }
        run.name = rerun.name ?? name + suffix
        return try await insert(run, key: key, requestText: original.request, idempotentText: requestText, rerunOf: id,
                                connection: connection, logger: logger)
    }
}
