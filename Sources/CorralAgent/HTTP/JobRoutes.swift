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
        let key = try IdempotencyKey.read(request.headers)
        switch try await service.submit(body: Array(body.readableBytesView), idempotencyKey: key) {
        case .created(let record): return json(record.jsonBuffer(), status: .created, location: "/v1/jobs/\(record.id)")
        case .replayed(let record): return json(record.jsonBuffer(), status: .ok, location: "/v1/jobs/\(record.id)")
        }
    }

    private func list(_ request: Request) async throws -> Response {
        let filter = try JobFilter(query: request.uri.queryParameters)
        let records = try await service.read { try await service.journal.jobs(filter) }
        let counts = service.live.counts
        var page = JSONWriter()
        page.addRaw("jobs", "[" + records.map { $0.summaryJSON() }.joined(separator: ",") + "]")
        page.add("next", records.count == filter.limit ? records.last.map { "j\($0.seq)" } : nil)
        page.add("running", counts.running)
        page.add("queued", counts.queued)
        return json(page.text)
    }

    private func output(_ request: Request, id: String) async throws -> Response {
        let query = request.uri.queryParameters
        let stream = query.get("stream") ?? "combined"
        guard ["stdout", "stderr", "combined"].contains(stream) else {
            throw APIError(.badRequest, "bad_query", "stream: expected stdout, stderr or combined", field: "stream")
        }
        var download = false
        if let given = query.get("download") {
            guard given == "1" || given == "0" else {
                throw APIError(.badRequest, "bad_query", "download: expected 1 or 0", field: "download")
            }
            download = given == "1"
        }
        // What is committed, then what is not yet: everything kept so far.
        // Pending chunks stay until their commit, so taking them before the
        // read leaves no gap (the seq filter drops what both hold). A job
        // final by the state read has every chunk committed (a result is
        // committed after its chunks), so its endings count them all.
        let record = try await service.summary(id)
        let pending = service.live.pendingOutput(id)
        var bytes = try await service.read { try await service.journal.output(of: id, stream: stream, pending: pending) }
        // A final job's kept tail follows, after a marker line where bytes
        // were dropped: the reader sees that, and where.
        var dropped = 0
        if record.state.isFinal {
            for ending in try await service.read({ try await service.journal.endings(of: id) })
            where stream == "combined" || ending.stream == stream {
                if ending.dropped > 0 {
                    if let last = bytes.last, last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
                    bytes += Array((OutputEnding.marker(ending.dropped, stream: ending.stream) + "\n").utf8)
                    dropped += ending.dropped
                }
                bytes += ending.tail
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = download ? "application/octet-stream" : "text/plain; charset=utf-8"
        if download { headers[.contentDisposition] = "attachment; filename=\"\(id)-\(stream).out\"" }
        headers[HTTPField.Name("X-Corral-Job-State")!] = record.state.rawValue
        headers[HTTPField.Name("X-Corral-Dropped-Bytes")!] = String(dropped)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// The list's query, validated: `state` (states, `final`, `failed`), `q`
/// (text in the command or name), `limit`, and the cursors `after` (jobs
/// older than that id: the `next` of the previous page) and `since` (that
/// id and newer only: a page re-reads exactly the window it shows).
struct JobFilter: Sendable {
    var states: [JobState] = []
    /// `failed`: exited with a code other than 0, signaled, or failed to start.
    var failed = false
    var text: String?
    var limit = 50
    var before: Int64?
    var since: Int64?

    static let maxText = 200

    init() {}

    init(query: Parameters) throws(APIError) {
        if let given = query.get("state"), !given.isEmpty {
            for name in given.split(separator: ",", omittingEmptySubsequences: false) {
                if name == "final" { states += JobState.finalStates; continue }
                if name == "failed" { failed = true; continue }
                guard let state = JobState(rawValue: String(name)) else {
                    throw APIError(.badRequest, "bad_query", "state: unknown state \"\(name.prefix(40))\"; one of queued, running, final, failed, "
                        + JobState.finalStates.map(\.rawValue).joined(separator: ", "), field: "state")
                }
                states.append(state)
            }
        }
        if let given = query.get("q"), !given.isEmpty {
            guard given.unicodeScalars.count <= JobFilter.maxText else {
                throw APIError(.badRequest, "bad_query", "q: at most \(JobFilter.maxText) characters", field: "q")
            }
            // SQLite would end the pattern at the NUL (and match more than
            // asked); no command or name contains one.
            guard !given.utf8.contains(0) else {
                throw APIError(.badRequest, "bad_query", "q: contains a NUL byte", field: "q")
            }
            text = given
        }
        if let given = query.get("limit") {
            guard let number = Int(given), (1...1000).contains(number) else {
                throw APIError(.badRequest, "bad_query", "limit: expected a number from 1 to 1000", field: "limit")
            }
            limit = number
        }
        before = try JobFilter.cursor(query.get("after"), "after")
        since = try JobFilter.cursor(query.get("since"), "since")
    }

    /// A job id as a cursor: `j` and 1 to 18 digits.
    private static func cursor(_ given: String?, _ name: String) throws(APIError) -> Int64? {
        guard let given else { return nil }
        let digits = given.dropFirst()
        guard given.hasPrefix("j"), (1...18).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let seq = Int64(digits) else {
            throw APIError(.badRequest, "bad_query", "\(name): expected a job id like j42", field: name)
        }
        return seq
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
