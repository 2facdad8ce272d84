import Foundation
import GRDB

extension Journal {
    /// The record with its result whole: for results stored in form 2, the
    /// output is put back from the journaled chunks (and `pending`, the
    /// job's chunks not yet committed) and the stored tail. The chunks are
    /// read with a cursor straight into one buffer per stream.
    static func resolved(_ record: JobRecord, _ db: Database, pending: [JournalBatch.Chunk]) throws -> JobRecord {
        guard record.resultForm == 2, record.resultJSON != nil else { return record }
        let parts = try Row.fetchAll(db, sql: "SELECT stream, head, tail FROM result_output WHERE job_id = ?",
                                     arguments: [record.id])
        let outputs = parts.map { ResultOutput(stream: $0["stream"], head: $0["head"], tail: [UInt8]($0["tail"] as Data)) }
        let head = { (stream: String) in outputs.first { $0.stream == stream }?.head ?? 0 }
        var kept = ["stdout": [UInt8](), "stderr": [UInt8]()]
        for stream in ["stdout", "stderr"] { kept[stream]!.reserveCapacity(head(stream)) }
        if outputs.contains(where: { $0.head > 0 }) {
            var last = 0
            func take(_ chunkStream: String, _ bytes: some Collection<UInt8>) {
                let stream = ResultOutput.carries(chunkStream, into: "stderr") ? "stderr" : "stdout"
                let room = head(stream) - kept[stream]!.count
                if room > 0 { kept[stream]!.append(contentsOf: bytes.prefix(room)) }
            }
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, stream, data FROM output WHERE job_id = ? ORDER BY seq",
                                           arguments: [record.id])
            while let row = try rows.next() {
                last = row["seq"]
                try row.withUnsafeData(named: "data") { take(row["stream"], $0 ?? Data()) }
            }
            for chunk in pending where chunk.seq > last { take(chunk.stream, chunk.bytes) }
        }
        for output in outputs where !output.tail.isEmpty { kept[output.stream]?.append(contentsOf: output.tail) }
        var record = record
        // Form 2 stores the tail of a stream that dropped bytes apart from
        // its head (`ResultOutput`): the split is where they were dropped.
        record.output = KeptOutput(stdout: kept["stdout"]!, stderr: kept["stderr"]!,
                                   stdoutHead: outputs.first { $0.stream == "stdout" }.map { $0.head },
                                   stderrHead: outputs.first { $0.stream == "stderr" }.map { $0.head })
        return record
    }
}

/// What `GET /v1/jobs/{id}/output` adds after the journaled chunks of a
/// final job: per stream, the kept tail past those chunks, and how many
/// bytes were dropped before it (shown as a marker line).
struct OutputEnding: Sendable {
    let stream: String
    let dropped: Int
    let tail: [UInt8]

    /// The marker between what was kept before dropped bytes and after.
    static func marker(_ dropped: Int, stream: String) -> String {
        "… \(dropped) bytes of \(stream) dropped …"
    }
}

extension Journal {
    /// The endings of a final job's streams (see `OutputEnding`); empty for
    /// a job that is not final, dropped nothing, or has a form 1 result.
    /// A stream's kept tail starts `head + dropped` bytes into it, and its
    /// journaled chunks hold its first `journaled` bytes: the gap between
    /// is what no copy kept; a tail overlapping the chunks is cut.
    func endings(of id: String) async throws -> [OutputEnding] {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT result_json, result_form FROM jobs WHERE id = ?", arguments: [id]),
                  let json = row["result_json"] as String?, (row["result_form"] as Int) == 2 else { return [] }
            var journaled: [String: Int] = [:]
            for counted in try Row.fetchAll(db, sql: "SELECT stream, SUM(length(data)) AS n FROM output WHERE job_id = ? GROUP BY stream",
                                            arguments: [id]) {
                let stream = ResultOutput.carries(counted["stream"], into: "stderr") ? "stderr" : "stdout"
                journaled[stream, default: 0] += counted["n"] as Int
            }
            var endings: [OutputEnding] = []
            for part in try Row.fetchAll(db, sql: "SELECT stream, head, tail FROM result_output WHERE job_id = ? ORDER BY stream DESC",
                                         arguments: [id]) {
                let stream: String = part["stream"]
                let head: Int = part["head"]
                let tail = [UInt8](part["tail"] as Data)
                let dropped = Journal.droppedCount(stream, in: json)
                let gap = head + dropped - journaled[stream, default: 0]
                let rest = gap >= 0 ? tail : Array(tail.dropFirst(-gap))
                if gap > 0 || !rest.isEmpty { endings.append(OutputEnding(stream: stream, dropped: max(gap, 0), tail: rest)) }
            }
            return endings
        }
    }

    /// `stdout_dropped`/`stderr_dropped` of a stored result (written by
    /// `JobResultJSON`: a key, a colon, digits).
    static func droppedCount(_ stream: String, in json: String) -> Int {
        guard let key = json.range(of: "\"\(stream)_dropped\":") else { return 0 }
        return Int(json[key.upperBound...].prefix { $0.isASCII && $0.isNumber }) ?? 0
    }
}
