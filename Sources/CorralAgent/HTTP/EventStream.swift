import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v1/jobs/{id}/events`: Server-Sent Events. Each output chunk is an
/// `output` event whose id is its sequence number; `Last-Event-ID` (or
/// `?last_event_id=`) resumes after that chunk. A `state` event says when
/// the job starts; the last event is `result`, with the job as `GET
/// /v1/jobs/{id}` shows it, and then the stream ends. Comments keep idle
/// connections alive.
package struct EventStream: Sendable {
    let service: JobService

    func response(_ request: Request, id: String, channel: any Channel) async throws -> Response {
        let record = try await service.summary(id)
        let resumeText = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters.get("last_event_id").map { String($0) }
        var resumeAfter = 0
        if let resumeText {
            guard let number = Int(resumeText), number >= 0 else {
                throw APIError(.badRequest, "bad_last_event_id", "Last-Event-ID must be an output event id (a number)")
            }
            resumeAfter = number
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let service = self.service
        let keepAlive = service.configuration.keepAliveInterval
        let writeTimeout = service.configuration.writeTimeout
        // Subscribe before reading the journal, so nothing falls between:
        // every kept chunk is committed by then, pending in the snapshot
        // (chunks stay pending until their commit), or a live event.
        let subscription = record.state.isFinal ? nil : service.live.subscribe(id)
        let unsubscribedPending = subscription == nil ? service.live.pendingOutput(id) : []
        let resumePoint = resumeAfter
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let live = service.live
            let deadline = WriteDeadline(channel: channel, limit: writeTimeout, shuttingDown: { !live.isAccepting })
            defer {
                deadline.cancel()
                if deadline.expired {
                    let limit = service.live.isAccepting ? "\(writeTimeout)" : "1 second (shutting down)"
                    service.logger.notice("event stream of job \(id) dropped: the client took no data for \(limit)")
                }
            }
            var sent = resumePoint
            func write(_ text: String) async throws {
                try await deadline.write { try await writer.write(ByteBuffer(string: text)) }
            }
            func send(_ chunk: JournalBatch.Chunk) async throws {
                guard chunk.seq > sent else { return }
                sent = chunk.seq
                try await write(EventStream.outputEvent(chunk))
            }
            try await write(": corral job \(id)\nretry: 2000\n\n")
            // What is committed, a page at a time (bounded memory per stream).
            while true {
                let page = try await service.journal.chunks(of: id, after: sent, limit: EventStream.pageSize)
                for stored in page {
                    try await send(JournalBatch.Chunk(jobID: id, seq: stored.seq, stream: stored.stream, bytes: stored.bytes))
                }
                if page.count < EventStream.pageSize { break }
            }
            for chunk in subscription?.pending ?? unsubscribedPending { try await send(chunk) }
            var finished = subscription == nil
            if let subscription {
                let ticker = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: keepAlive)
                        subscription.tick()
                    }
                }
                defer { ticker.cancel() }
                loop: for await event in subscription.events {
                    switch event {
                    case .output(let chunk): try await send(chunk)
                    case .started(let pid): try await write("event: state\ndata: {\"state\":\"running\",\"pid\":\(pid)}\n\n")
                    case .finished: finished = true; break loop
                    case .keepAlive: try await write(": keep-alive\n\n")
                    }
                }
            }
            // Ended early: the agent ended every stream to shut down, or this
            // client fell more than LiveJobs.subscriberBuffer events behind (it
            // resumes with Last-Event-ID) - also while the shutdown's grace runs.
            if !finished, !service.live.streamsHaveEnded {
                service.logger.notice("event stream of job \(id) dropped: the client fell \(LiveJobs.subscriberBuffer) events behind")
                // It must come back with Last-Event-ID anyway. Closed, not
                // just ended: a client that stopped reading while the
                // kernel still took the stream's bytes would otherwise keep
                // the connection, the end queued behind what it never read,
                // until the idle timeout (60 s), not --write-timeout.
                try? await deadline.write { try await writer.finish(nil) }
                channel.close(promise: nil)
                return
            }
            if finished, let final = try? await service.job(id), final.state.isFinal {
                let event = final.jsonBuffer(prefix: "event: result\ndata: ", suffix: "\n\n")
                try await deadline.write { try await writer.write(event) }
            }
            try await deadline.write { try await writer.finish(nil) }
        })
    }

    /// Committed chunks read at once when catching up.
    static let pageSize = 16

    static func outputEvent(_ chunk: JournalBatch.Chunk) -> String {
        outputEvent(seq: chunk.seq, stream: chunk.stream, bytes: chunk.bytes)
    }

    /// One chunk as an `output` event (also the fleet server's format):
    /// data `{"seq","stream","text"}`, or `"base64"` for bytes that are not UTF-8.
    package static func outputEvent(seq: Int, stream: String, bytes: [UInt8]) -> String {
        var json = JSONWriter()
        json.add("seq", seq)
        json.add("stream", stream)
        if let text = String(validating: bytes, as: UTF8.self) {
            json.add("text", text)
        } else {
            json.add("base64", Data(bytes).base64EncodedString())
        }
        return "id: \(seq)\nevent: output\ndata: \(json.text)\n\n"
    }
}
