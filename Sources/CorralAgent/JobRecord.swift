import Corral
import CorralFormat
import GRDB

/// The output of a result stored once, read back: the bytes of each stream.
struct KeptOutput: Sendable {
    var stdout: [UInt8]
    var stderr: [UInt8]
    /// Where each stream's dropped bytes were, as an index into its kept
    /// bytes (the length of the head); the whole count when none were.
    var stdoutHead: Int
    var stderrHead: Int

    init(stdout: [UInt8], stderr: [UInt8], stdoutHead: Int? = nil, stderrHead: Int? = nil) {
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutHead = min(stdoutHead ?? stdout.count, stdout.count)
        self.stderrHead = min(stderrHead ?? stderr.count, stderr.count)
    }
}

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
    /// 1: the output is inline in `resultJSON`; 2: it is stored once, in
    /// the journaled chunks and `result_output` (`Journal.resolved`).
    var resultForm = 1
    /// For form 2, the result's output as `Journal.resolved` read it back.
    var output: KeptOutput?
    var message: String?
    /// The deadline the job was given, in milliseconds (nil: none).
    var timeoutMilliseconds: Int64?
    /// The spec as submitted (read with `columns`, not the summary).
    var specJSON: String?
    /// For a job not yet final: how many bytes of each stream the live
    /// output keeps (its `max_output`), so a reader can tell it is cut.
    var liveOutputLimit: Int?

    /// What a list shows: no result, so a page costs the same however
    /// much output its jobs wrote.
    static let summaryColumns = "seq, id, name, command, state, submitted_ms, started_ms, finished_ms, pid, exit_code, signal, duration_s, message, timeout_ms"
    static let columns = summaryColumns + ", result_json, result_form, spec_json"

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
        if row.hasColumn("result_json") {
            resultJSON = row["result_json"]
            resultForm = row["result_form"]
        }
        message = row["message"]
        timeoutMilliseconds = row["timeout_ms"]
        if row.hasColumn("spec_json") { specJSON = row["spec_json"] }
    }

    /// The API's summary fields (what a list shows). With its result, the
    /// view is written by `jsonBuffer` (JobRecord+Response.swift).
    func summaryJSON() -> String {
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
        if let timeoutMilliseconds { json.add("timeout_s", Double(timeoutMilliseconds) / 1000) } else { json.addRaw("timeout_s", "null") }
        return json.text
    }
}

extension WallClockTime {
    init(milliseconds: Int64) { self.init(nanosecondsSince1970: milliseconds * 1_000_000) }
    var milliseconds: Int64 { nanosecondsSince1970 / 1_000_000 }
}
