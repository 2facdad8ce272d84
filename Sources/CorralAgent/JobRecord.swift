import Corral
import CorralFormat
import GRDB

/// A job as the journal holds it and the API shows it.
struct JobRecord: Sendable {
    var seq: Int64
    var id: String
    var name: String?
    var command: String
    var state: JobState
    var submittedAt: WallClockTime
    var startedAt: WallClockTime?
    var finishedAt: WallClockTime?
    var pid: Int32?
    var exitCode: Int32?
    var signal: String?
    var durationSeconds: Double?
    /// The result object (`JobResultJSON`'s schema) once final.
    var resultJSON: String?
    var message: String?

    static let columns = "seq, id, name, command, state, submitted_ms, started_ms, finished_ms, pid, exit_code, signal, duration_s, result_json, message"

    init(row: Row) {
        seq = row["seq"]
        id = row["id"]
        name = row["name"]
        command = row["command"]
        state = JobState(rawValue: row["state"]) ?? .lost
        submittedAt = WallClockTime(milliseconds: row["submitted_ms"])
        startedAt = (row["started_ms"] as Int64?).map(WallClockTime.init(milliseconds:))
        finishedAt = (row["finished_ms"] as Int64?).map(WallClockTime.init(milliseconds:))
        pid = row["pid"]
        exitCode = row["exit_code"]
        signal = row["signal"]
        durationSeconds = row["duration_s"]
        resultJSON = row["result_json"]
        message = row["message"]
    }

    /// The API's view: summary fields, and `result` once final.
    func json(includingResult: Bool = true) -> String {
        var json = JSONWriter()
        json.add("id", id)
        json.add("name", name)
        json.add("command", command)
        json.add("state", state.rawValue)
        json.add("final", state.isFinal)
        json.add("submitted_at", submittedAt.rfc3339)
        json.add("started_at", startedAt?.rfc3339)
        json.add("finished_at", finishedAt?.rfc3339)
        json.add("pid", pid)
        json.add("exit_code", exitCode)
        json.add("signal", signal)
        if let durationSeconds { json.add("duration_s", durationSeconds) } else { json.addRaw("duration_s", "null") }
        json.add("message", message)
        if includingResult { json.addRaw("result", resultJSON ?? "null") }
        return json.text
    }
}

extension WallClockTime {
    init(milliseconds: Int64) { self.init(nanosecondsSince1970: milliseconds * 1_000_000) }
    var milliseconds: Int64 { nanosecondsSince1970 / 1_000_000 }
}
