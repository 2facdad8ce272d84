import CorralFormat
import Foundation
import NIOCore

extension JobRecord {
    /// The API's view of the job, `result` included, written once into
    /// one buffer between `prefix` and `suffix`: a result's output is the
    /// bulk of it and is not copied through intermediate strings.
    func jsonBuffer(prefix: String = "", suffix: String = "\n") -> ByteBuffer {
        let summary = summaryJSON()
        let result = resultJSON ?? "null"
        var buffer = ByteBuffer()
        buffer.reserveCapacity(prefix.utf8.count + summary.utf8.count + result.utf8.count + suffix.utf8.count + 64
                               + (output.map { $0.stdout.count + $0.stderr.count } ?? 0))
        buffer.writeString(prefix)
        buffer.writeString(String(summary.dropLast()))  // without its closing brace
        if let specJSON {
            // Valid JSON (the decoder checked it): a raw line break can only
            // be whitespace between tokens, and must not split an SSE line.
            buffer.writeString(",\"spec\":")
            buffer.writeString(specJSON.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))
        }
        if let liveOutputLimit { buffer.writeString(",\"live_output_limit\":\(liveOutputLimit)") }
        buffer.writeString(",\"result\":")
        ResultText.write(result, output: output, into: &buffer)
        buffer.writeString("}")
        buffer.writeString(suffix)
        return buffer
    }
}

/// Writes a stored result with its output put back in.
enum ResultText {
    /// Writes `json`, replacing the empty `"stdout":""` and `"stderr":""`
    /// it was stored with by the kept output (inside a JSON string every
    /// quote is escaped, so the first match is the key), and, for a stream
    /// that dropped bytes, the empty `"stdout_tail":""` by the kept tail.
    /// Output that is not UTF-8 becomes `stdout_base64` (`stdout_tail_base64`),
    /// as `JobResultJSON` writes it.
    static func write(_ json: String, output: KeptOutput?, into buffer: inout ByteBuffer) {
        guard let output else {
            buffer.writeString(json)
            return
        }
        let text = Array(json.utf8)  // small: the result without its output
        var pieces: [(at: Range<Int>, stream: String, bytes: ArraySlice<UInt8>)] = []
        for (stream, bytes, head) in [("stdout", output.stdout, output.stdoutHead), ("stderr", output.stderr, output.stderrHead)] {
            let tailKey = find(Array("\"\(stream)_tail\":\"\"".utf8), in: text)
            let split = tailKey == nil ? bytes.count : head
            if split > 0, let range = find(Array("\"\(stream)\":\"\"".utf8), in: text) {
                pieces.append((range, stream, bytes[..<split]))
            }
            if let tailKey, split < bytes.count { pieces.append((tailKey, stream + "_tail", bytes[split...])) }
        }
        pieces.sort { $0.at.lowerBound < $1.at.lowerBound }
        var cursor = 0
        for piece in pieces {
            buffer.writeBytes(text[cursor..<piece.at.lowerBound])
            if isValidUTF8(piece.bytes) {
                buffer.writeString("\"\(piece.stream)\":")
                writeQuoted(piece.bytes, into: &buffer)
            } else {
                buffer.writeString("\"\(piece.stream)_base64\":\"")
                buffer.writeString(Data(piece.bytes).base64EncodedString())
                buffer.writeString("\"")
            }
            cursor = piece.at.upperBound
        }
        buffer.writeBytes(text[cursor...])
    }

    /// A JSON string of UTF-8 bytes, escaped as `JSONWriter.quote` does.
    static func writeQuoted(_ bytes: ArraySlice<UInt8>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var start = bytes.startIndex
        for index in bytes.indices {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            buffer.writeBytes(bytes[start..<index])
            switch byte {
            case UInt8(ascii: "\""): buffer.writeString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeString("\\\\")
            case UInt8(ascii: "\n"): buffer.writeString("\\n")
            case UInt8(ascii: "\r"): buffer.writeString("\\r")
            case UInt8(ascii: "\t"): buffer.writeString("\\t")
            default:
                let hex = String(byte, radix: 16)
                buffer.writeString("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            }
            start = index + 1
        }
        buffer.writeBytes(bytes[start...])
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    static func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start..<(start + needle.count) }
        }
        return nil
    }
}
