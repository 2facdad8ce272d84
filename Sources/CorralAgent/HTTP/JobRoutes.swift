import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/jobs`: submit, list, read, output, cancel. Events are in
/// `EventStream`.
struct JobRoutes: Sendable {
    let service: JobService

    func add(to router: Router<AgentRequestContext>) {
        let jobs = router.group("v1/jobs")
        jobs.post { request, _ in try await submit(request) }
        jobs.get { request, _ in try await list(request) }
        jobs.get(":id") { _, context in json(try await service.job(try context.parameters.require("id")).jsonBuffer()) }
        jobs.get(":id/output") { request, context in try await output(request, id: try context.parameters.require("id")) }
        jobs.get(":id/events") { request, context in
            try await EventStream(service: service).response(request, id: try context.parameters.require("id"),
                                                             channel: context.channel)
        }
        jobs.delete(":id") { _, context in
            json(try await service.cancel(try context.parameters.require("id")).jsonBuffer(), status: .accepted)
        }
    }

    private func submit(_ request: Request) async throws -> Response {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the job spec as 'Content-Type: application/json'")
        }
        var request = request
        let body = try await request.collectBody(upTo: service.configuration.maxBodyBytes)
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        switch try await service.submit(body: Array(body.readableBytesView), idempotencyKey: key) {
        case .created(let record): return json(record.jsonBuffer(), status: .created, location: "/v1/jobs/\(record.id)")
        case .replayed(let record): return json(record.jsonBuffer(), status: .ok, location: "/v1/jobs/\(record.id)")
        }
    }

    private func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        var states: [JobState] = []
        if let given = query.get("state"), !given.isEmpty {
            for name in given.split(separator: ",") {
                if name == "final" { states += JobState.finalStates; continue }
                guard let state = JobState(rawValue: String(name)) else {
                    throw APIError(.badRequest, "bad_query", "state: unknown state \"\(name)\"; one of queued, running, final, "
                        + JobState.finalStates.map(\.rawValue).joined(separator: ", "), field: "state")
                }
                states.append(state)
            }
        }
        var limit = 50
        if let given = query.get("limit") {
            guard let number = Int(given), (1...1000).contains(number) else {
                throw APIError(.badRequest, "bad_query", "limit: expected a number from 1 to 1000", field: "limit")
            }
            limit = number
        }
        var before: Int64?
        if let after = query.get("after") {
            guard after.hasPrefix("j"), let seq = Int64(after.dropFirst()) else {
                throw APIError(.badRequest, "bad_query", "after: expected a job id like j42", field: "after")
            }
            before = seq
        }
        let records = try await service.read { try await service.journal.jobs(states: states, limit: limit, before: before) }
        let counts = service.live.counts
        var page = JSONWriter()
        page.addRaw("jobs", "[" + records.map { $0.summaryJSON() }.joined(separator: ",") + "]")
        page.add("next", records.count == limit ? records.last.map { "j\($0.seq)" } : nil)
        page.add("running", counts.running)
        page.add("queued", counts.queued)
        return json(page.text)
    }

    private func output(_ request: Request, id: String) async throws -> Response {
        let stream = request.uri.queryParameters.get("stream") ?? "combined"
        guard ["stdout", "stderr", "combined"].contains(stream) else {
            throw APIError(.badRequest, "bad_query", "stream: expected stdout, stderr or combined", field: "stream")
        }
        // What is committed, then what is not yet: everything kept so far.
        // Pending chunks stay until their commit (even a result may be
        // committed ahead of its last chunks), so taking them first leaves
        // no gap (the seq filter drops what both hold).
        let pending = service.live.pendingOutput(id)
        let record = try await service.summary(id)
        let bytes = try await service.read { try await service.journal.output(of: id, stream: stream, pending: pending) }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[HTTPField.Name("X-Corral-Job-State")!] = record.state.rawValue
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

func json(_ text: String, status: HTTPResponse.Status = .ok, location: String? = nil) -> Response {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(text.utf8.count + 1)
    buffer.writeString(text)
    buffer.writeString("\n")
    return json(buffer, status: status, location: location)
}

/// A JSON response of a body already written (with its newline).
func json(_ buffer: ByteBuffer, status: HTTPResponse.Status = .ok, location: String? = nil) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    if let location { headers[.location] = location }
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: buffer))
}
