import NIOCore
import PostgresNIO

/// A task's shipped output as `GET …/output` and the event stream read it:
/// the task's state first, then its chunks (a task final before the chunks
/// are read has every chunk committed: an agent ships its chunks, then the
/// outcome).
enum TaskOutput {
    struct Chunk: Sendable {
        var seq: Int
        var stream: String
        var bytes: [UInt8]

        /// The bytes the agent's cap left out, for the `truncated` record.
        var truncatedBytes: Int? {
            stream == "truncated" ? Int(String(decoding: bytes, as: UTF8.self)) ?? 0 : nil
        }
    }

    /// Whether the task is final; nil when the run has no task on `host`.
    static func isFinal(_ client: PostgresClient, run: Int64, host: String) async throws -> Bool? {
        var final: Bool?
        for try await state in try await client.query("SELECT state FROM task WHERE run_id = \(run) AND host = \(host)")
            .decode(String.self) {
            final = !["pending", "queued", "running"].contains(state)
        }
        return final
    }

    /// The chunks after `after`, in order, at most `limit` (read in the
    /// run's day partition only).
    static func chunks(_ client: PostgresClient, run: Int64, host: String, after: Int, limit: Int) async throws -> [Chunk] {
        var chunks: [Chunk] = []
        let rows = try await client.query("""
            SELECT o.seq, o.stream, o.data FROM task_output o JOIN task t ON t.run_id = o.run_id AND t.agent_id = o.agent_id
             AND o.day = (SELECT day FROM run WHERE run_id = \(run))
             WHERE t.run_id = \(run) AND t.host = \(host) AND o.seq > \(after) ORDER BY o.seq LIMIT \(limit)
            """)
        for try await (seq, stream, data) in rows.decode((Int, String, ByteBuffer).self) {
            chunks.append(Chunk(seq: seq, stream: stream, bytes: Array(data.readableBytesView)))
        }
        return chunks
    }
}
