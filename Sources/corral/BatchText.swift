import Corral
import CorralFormat
import Foundation

/// `corral batch --format text`: one line per job for a person, fields
/// separated by two spaces: id, outcome, exit code or signal, duration,
/// and, when it did not succeed, the first line of its error (or of its
/// stderr). The JSON form (docs/result.md) has everything.
enum BatchText {
    static func line(_ result: JobResult, id: String) -> String {
        let (code, signal) = JobResultJSON.leaderEnd(result)
        var fields = [id, JobResultJSON.outcomeName(result.outcome),
                      code.map { "exit \($0)" } ?? signal.map { "signal \($0)" } ?? "-",
                      "\(format(JobResultJSON.durationSeconds(result), digits: 3))s"]
        if result.outcome != .exited(0) {
            if let error = JobResultJSON.errorMessage(result.outcome) {
                fields.append(firstLine(error))
            } else if case let stderr = firstLine(result.stderr.text), !stderr.isEmpty {
                fields.append("stderr: " + stderr)
            }
        }
        return fields.map(printable).joined(separator: "  ")
    }

    /// A line answered without running (`invalid_spec`, `cancelled`), from its JSON.
    static func line(json: String) -> String {
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        let id = object["id"] as? String ?? "-"
        let outcome = object["outcome"] as? String ?? "-"
        let error = (object["error"] as? String).map(firstLine) ?? ""
        return [id, outcome, "-", "-", error].filter { !$0.isEmpty }.map(printable).joined(separator: "  ")
    }

    /// `text` safe for a terminal: control characters (C0, DEL, C1, such
    /// as the escape that starts a terminal sequence) written as `\x1b`.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" : "") + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// The first non-blank line, at most 200 characters.
    private static func firstLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first { !$0.allSatisfy(\.isWhitespace) } ?? ""
        return line.count > 200 ? String(line.prefix(200)) + "…" : String(line)
    }
}
