import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird

/// `GET /v1/jobs/{id}/events`: Server-Sent Events. Each output chunk is an
/// `output` event whose id is its sequence number; `Last-Event-ID` (or
/// `?last_event_id=`) resumes after that chunk. A `state` event says when
/// the job starts; the last event is `result`, with the job as `GET
/// /v1/jobs/{id}` shows it, and then the stream ends. Comments keep idle
/// connections alive.
struct EventStream: Sendable {
    let service: JobService

    func response(_ request: Request, id: String) async throws -> Response {
        let record = try await service.job(id)
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
        // Subscribe before reading the journal, so nothing falls between:
        // every kept chunk is committed by then, pending in the snapshot
        // (chunks stay pending until their commit), or a live event.
        let subscription = record.state.isFinal ? nil : service.live.subscribe(id)
        let resumePoint = resumeAfter
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var sent = resumePoint
            func send(_ chunk: JournalBatch.Chunk) async throws {
                guard chunk.seq > sent else { return }
                sent = chunk.seq
                try await writer.write(ByteBuffer(string: EventStream.outputEvent(chunk)))
            }
            try await writer.write(ByteBuffer(string: ": corral job \(id)\nretry: 2000\n\n"))
            for stored in try await service.journal.chunks(of: id, after: sent) {
                try await send(JournalBatch.Chunk(jobID: id, seq: stored.seq, stream: stored.stream, bytes: stored.bytes))
            }
            if let subscription {
                for chunk in subscription.pending { try await send(chunk) }
                let (merged, continuation) = AsyncStream<LiveJobs.Event?>.makeStream()
                let pump = Task {
                    for await event in subscription.events { continuation.yield(event) }
                    continuation.finish()
                }
                let ticker = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: keepAlive)
                        continuation.yield(nil)
                    }
                }
                defer {
                    pump.cancel()
                    ticker.cancel()
                }
                loop: for await event in merged {
                    switch event {
                    case .output(let chunk)?: try await send(chunk)
                    case .started(let pid)?:
                        try await writer.write(ByteBuffer(string: "event: state\ndata: {\"state\":\"running\",\"pid\":\(pid)}\n\n"))
                    case .finished?: break loop
                    case nil: try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    }
                }
            }
            if let final = try await service.journal.job(id), final.state.isFinal {
                try await writer.write(ByteBuffer(string: "event: result\ndata: \(final.json())\n\n"))
            }
            try await writer.finish(nil)
        })
    }

    static func outputEvent(_ chunk: JournalBatch.Chunk) -> String {
        var json = JSONWriter()
        json.add("seq", chunk.seq)
        json.add("stream", chunk.stream)
        if let text = String(validating: chunk.bytes, as: UTF8.self) {
            json.add("text", text)
        } else {
            json.add("base64", Data(chunk.bytes).base64EncodedString())
        }
        return "id: \(chunk.seq)\nevent: output\ndata: \(json.text)\n\n"
    }
}
