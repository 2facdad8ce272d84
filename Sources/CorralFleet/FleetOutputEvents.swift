import CorralAgent
import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// `GET /v1/runs/{id}/tasks/{host}/events`: a task's shipped output as
/// Server-Sent Events, in the agent's event format: `output` events (`id` =
/// chunk number; data `{"seq","stream","text"}`, or `"base64"` for bytes
/// that are not UTF-8), a `truncated` event `{"bytes"}` where the agent's
/// cap dropped output, and, once the task is final and every chunk was
/// sent, one `result` event (id `done`; the task as `GET /v1/runs/{id}`
/// shows it) and the end. `Last-Event-ID` (or `?last_event_id=`) resumes
/// after a chunk; after `done` the answer is `204` (an EventSource then
/// stops instead of reconnecting for the result again).
///
/// The server polls the database for each stream (every half second, a
/// page of chunks at a time), so a stream costs one small indexed query per
/// poll. Streams are bounded: at most `maximumStreams` at once (then `503`),
/// each ends after `maximumDuration` (an EventSource reconnects with
/// `Last-Event-ID` and loses nothing).
struct FleetOutputEvents: Sendable {
    let api: FleetAPI

    static let maximumStreams = 256
    static let maximumDuration: Duration = .seconds(600)
    static let pollInterval: Duration = .milliseconds(500)
    static let keepAlive: Duration = .seconds(15)
    static let pageSize = 200

    /// The streams open on one server, and whether it is shutting down
    /// (then every stream ends at its next poll).
    final class Count: Sendable {
        private let value = Atomic<Int>(0)
        private let stopping = Atomic<Bool>(false)

        /// A place for one stream, or nil when `maximumStreams` are open.
        /// The place is given back when the slot goes, whether the stream
        /// ran or its response was never written (a client already gone).
        func enter() -> Slot? {
            let (count, _) = value.add(1, ordering: .relaxed)
            if count <= FleetOutputEvents.maximumStreams { return Slot(count: self) }
            value.subtract(1, ordering: .relaxed)
            return nil
        }

        fileprivate func leave() { value.subtract(1, ordering: .relaxed) }

        var isStopping: Bool { stopping.load(ordering: .relaxed) }
        func stop() { stopping.store(true, ordering: .relaxed) }
    }

    final class Slot: Sendable {
        private let count: Count
        fileprivate init(count: Count) { self.count = count }
        deinit { count.leave() }
    }

    func response(_ request: Request, run: Int64, host: String) async throws -> Response {
        let resume = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters.get("last_event_id").map { String($0) }
        var after = 0
        if resume == "done" {
            guard try await state(run: run, host: host) != nil else {
                throw APIError(.notFound, "not_found", "run \(run) has no task on \(host)")
            }
            return Response(status: .noContent)
        }
        if let resume {
            guard let n = Int(resume), n >= 0, n <= Int(Int32.max) else {
                throw APIError(.badRequest, "bad_last_event_id", "Last-Event-ID must be an output event id (a number)", field: "last_event_id")
            }
            after = n
        }
        // The task must exist before the stream is opened (404 otherwise).
        guard try await state(run: run, host: host) != nil else {
            throw APIError(.notFound, "not_found", "run \(run) has no task on \(host)")
        }
        guard let slot = api.streams.enter() else {
            throw APIError(.serviceUnavailable, "too_many_streams",
                           "\(FleetOutputEvents.maximumStreams) output streams are open: poll GET …/output?after=SEQ instead")
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let events = self
        let start = after
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { withExtendedLifetime(slot) {} }
            try await writer.write(ByteBuffer(string: ": corral task \(run)/\(host)\nretry: 2000\n\n"))
            var sent = start
            let ends = ContinuousClock.now + FleetOutputEvents.maximumDuration
            var quietSince = ContinuousClock.now
            while ContinuousClock.now < ends, !Task.isCancelled, !events.api.streams.isStopping {
                // The state first: a task final before this read has every
                // chunk committed (the agent ships its chunks, then the outcome).
                guard let final = try await events.state(run: run, host: host) else { break }
                let chunks = try await events.chunks(run: run, host: host, after: sent)
                for chunk in chunks {
                    sent = chunk.seq
                    try await writer.write(ByteBuffer(string: FleetOutputEvents.event(chunk)))
                }
                if !chunks.isEmpty { quietSince = .now }
                if final, chunks.count < FleetOutputEvents.pageSize {
                    if let task = try await events.task(run: run, host: host) {
                        try await writer.write(ByteBuffer(string: "id: done\nevent: result\ndata: \(task)\n\n"))
                    }
                    break
                }
                if chunks.count == FleetOutputEvents.pageSize { continue }
                if ContinuousClock.now - quietSince >= FleetOutputEvents.keepAlive {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    quietSince = .now
                }
                try await Task.sleep(for: FleetOutputEvents.pollInterval)
            }
            try await writer.finish(nil)
        })
    }

    /// Whether the task is final; nil when there is no such task.
    private func state(run: Int64, host: String) async throws -> Bool? {
        try await api.database("read a task") { [client = api.client] in
            try await TaskOutput.isFinal(client, run: run, host: host)
        }
    }

    private func chunks(run: Int64, host: String, after: Int) async throws -> [TaskOutput.Chunk] {
        try await api.database("read output") { [client = api.client] in
            try await TaskOutput.chunks(client, run: run, host: host, after: after, limit: FleetOutputEvents.pageSize)
        }
    }

    /// The task as the run view shows it, as JSON text.
    private func task(run: Int64, host: String) async throws -> String? {
        try await api.database("read a task") { [client = api.client] in
            try await FleetAPI.first(try await client.query("""
                SELECT \(unescaped: FleetAPI.taskView) FROM task t JOIN run r ON r.run_id = t.run_id
                 WHERE t.run_id = \(run) AND t.host = \(host)
                """))
        }
    }

    private static func event(_ chunk: TaskOutput.Chunk) -> String {
        guard let dropped = chunk.truncatedBytes else {
            return EventStream.outputEvent(seq: chunk.seq, stream: chunk.stream, bytes: chunk.bytes)
        }
        var json = JSONWriter()
        json.add("seq", chunk.seq)
        json.add("bytes", dropped)
        return "id: \(chunk.seq)\nevent: truncated\ndata: \(json.text)\n\n"
    }
}
