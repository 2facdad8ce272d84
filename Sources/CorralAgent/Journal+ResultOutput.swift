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
        record.output = KeptOutput(stdout: kept["stdout"]!, stderr: kept["stderr"]!)
        return record
    }
}
