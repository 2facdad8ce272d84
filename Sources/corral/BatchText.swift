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
        return fields.joined(separator: "  ")
    }

    /// A line answered without running (`invalid_spec`, `cancelled`), from its JSON.
    static func line(json: String) -> String {
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        let id = object["id"] as? String ?? "-"
        let outcome = object["outcome"] as? String ?? "-"
        let error = (object["error"] as? String).map(firstLine) ?? ""
        return [id, outcome, "-", "-", error].filter { !$0.isEmpty }.joined(separator: "  ")
    }

    /// The first non-blank line, at most 200 characters.
    private static func firstLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first { !$0.allSatisfy(\.isWhitespace) } ?? ""
        return line.count > 200 ? String(line.prefix(200)) + "…" : String(line)
    }
}
