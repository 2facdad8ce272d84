import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird

/// `/v1/jobs`: submit, list, read, output, cancel. Events are in
/// `EventStream`.
struct JobRoutes: Sendable {
    let service: JobService

    func add<Context: RequestContext>(to router: Router<Context>) {
        let jobs = router.group("v1/jobs")
        jobs.post { request, _ in try await submit(request) }
        jobs.get { request, _ in try await list(request) }
        jobs.get(":id") { _, context in json(try await service.job(try context.parameters.require("id")).json()) }
        jobs.get(":id/output") { request, context in try await output(request, id: try context.parameters.require("id")) }
        jobs.get(":id/events") { request, context in
            try await EventStream(service: service).response(request, id: try context.parameters.require("id"))
        }
        jobs.delete(":id") { _, context in
            json(try await service.cancel(try context.parameters.require("id")).json(), status: .accepted)
        }
    }

    private func submit(_ request: Request) async throws -> Response {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the job spec as 'Content-Type: application/json'")
        }
        var request = request
        let body = try await request.collectBody(upTo: service.configuration.maxBodyBytes)
        // Strict: invalid UTF-8 is refused, never repaired into a different command.
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw APIError.badSpec(field: nil, message: "the body is not valid UTF-8")
        }
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        switch try await service.submit(body: text, idempotencyKey: key) {
        case .created(let record): return json(record.json(), status: .created, location: "/v1/jobs/\(record.id)")
        case .replayed(let record): return json(record.json(), status: .ok, location: "/v1/jobs/\(record.id)")
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
        page.addRaw("jobs", "[" + records.map { $0.json(includingResult: false) }.joined(separator: ",") + "]")
        page.add("next", records.count == limit ? records.last.map { "j\($0.seq)" } : nil)
        page.add("running", counts.running)
        page.add("queued", counts.queued)
        return json(page.text)
    }

    private func output(_ request: Request, id: String) async throws -> Response {
        let record = try await service.job(id)
        let stream = request.uri.queryParameters.get("stream") ?? "combined"
        guard ["stdout", "stderr", "combined"].contains(stream) else {
            throw APIError(.badRequest, "bad_query", "stream: expected stdout, stderr or combined", field: "stream")
        }
        // What is committed, then what is not yet: everything kept so far.
        // Pending chunks stay until their commit, so taking them first
        // leaves no gap (the seq filter drops what both hold).
        let pending = record.state.isFinal ? [] : service.live.pendingOutput(id)
        var chunks = try await service.read { try await service.journal.chunks(of: id) }
        let last = chunks.last?.seq ?? 0
        chunks += pending.filter { $0.seq > last }.map { OutputRecord(seq: $0.seq, stream: $0.stream, bytes: $0.bytes) }
        var bytes: [UInt8] = []
        for chunk in chunks where stream == "combined" || chunk.stream == stream || (stream == "stdout" && chunk.stream == "combined") {
            bytes += chunk.bytes
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[HTTPField.Name("X-Corral-Job-State")!] = record.state.rawValue
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

func json(_ text: String, status: HTTPResponse.Status = .ok, location: String? = nil) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    if let location { headers[.location] = location }
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
}
