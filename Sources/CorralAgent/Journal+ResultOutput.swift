import CorralFormat
import Foundation
import GRDB

extension Journal {
    /// The record with its result whole: for results stored in form 2, the
    /// output is put back from the journaled chunks (and `pending`, the
    /// job's chunks not yet committed) and the stored tail. The chunks are
    /// read with a cursor straight into one buffer per stream.
    static func resolved(_ record: JobRecord, _ db: Database, pending: [JournalBatch.Chunk]) throws -> JobRecord {
        guard record.resultForm == 2, let stored = record.resultJSON else { return record }
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
        record.resultJSON = ResultText.withOutput(stored, stdout: kept["stdout"]!, stderr: kept["stderr"]!)
        return record
    }
}

/// Puts a stored result's output back into its JSON text.
enum ResultText {
    /// Replaces the empty `"stdout":""` and `"stderr":""` the result was
    /// stored with (inside a JSON string every quote is escaped, so the
    /// first match is the key), building the text once.
    static func withOutput(_ json: String, stdout: [UInt8], stderr: [UInt8]) -> String {
        let text = Array(json.utf8)  // small: the result without its output
        var pieces: [(at: Range<Int>, stream: String, bytes: [UInt8])] = []
        for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] where !bytes.isEmpty {
            if let range = find(Array("\"\(stream)\":\"\"".utf8), in: text) { pieces.append((range, stream, bytes)) }
        }
        guard !pieces.isEmpty else { return json }
        pieces.sort { $0.at.lowerBound < $1.at.lowerBound }
        var out = ""
        out.reserveCapacity(text.count + pieces.reduce(0) { $0 + $1.bytes.count + 16 })
        var cursor = 0
        for piece in pieces {
            out += String(decoding: text[cursor..<piece.at.lowerBound], as: UTF8.self)
            if let valid = String(validating: piece.bytes, as: UTF8.self) {
                out += "\"\(piece.stream)\":"
                out += JSONWriter.quote(valid)
            } else {
                out += "\"\(piece.stream)_base64\":\""
                out += Data(piece.bytes).base64EncodedString()
                out += "\""
            }
            cursor = piece.at.upperBound
        }
        out += String(decoding: text[cursor...], as: UTF8.self)
        return out
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start..<(start + needle.count) }
        }
        return nil
    }
}
