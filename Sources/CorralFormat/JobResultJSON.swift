import Corral
import Foundation

/// Encodes results as one JSON object per line: the schema of `corral run
/// --json`, `corral batch` and the agent's API.
public enum JobResultJSON {
    /// The `outcome` field's value.
    public static func outcomeName(_ outcome: Outcome) -> String {
        switch outcome {
        case .exited: return "exited"
        case .signaled: return "signaled"
        case .timedOut: return "timed_out"
        case .cancelled: return "cancelled"
        case .failedToStart: return "failed_to_start"
        case .lost: return "lost"
        }
    }

    /// The `exit_code` and `signal` fields: how the leader ended, if it did.
    public static func leaderEnd(_ result: JobResult) -> (exitCode: Int32?, signal: String?) {
        switch result.leaderStatus {
        case .exited(let code)?: return (code, nil)
        case .signaled(let killer, _)?: return (nil, killer.name)
        case nil: return (nil, nil)
        }
    }

    /// The `error` field: why a job failed to start or was lost.
    public static func errorMessage(_ outcome: Outcome) -> String? {
        switch outcome {
        case .failedToStart(let failure): return failure.message
        case .lost(let reason): return reason
        default: return nil
        }
    }

    /// The `duration_s` field, to the millisecond.
    public static func durationSeconds(_ result: JobResult) -> Double {
        (result.timing.duration.seconds * 1000).rounded() / 1000
    }

    /// One result object; `line` is the input line of the spec, for `corral batch`.
    public static func encode(_ result: JobResult, id: String, line: Int? = nil) -> String {
        var json = JSONWriter()
        json.add("id", id)
        if let line { json.add("line", line) }
        json.add("outcome", outcomeName(result.outcome))
        let (exitCode, signal) = leaderEnd(result)
        json.add("exit_code", exitCode)
        json.add("signal", signal)
        add(head(of: result.stdout), as: "stdout", to: &json)
        add(head(of: result.stderr), as: "stderr", to: &json)
        json.add("stdout_dropped", result.stdout.droppedBytes)
        json.add("stderr_dropped", result.stderr.droppedBytes)
        // Where bytes were dropped, the tail is its own field, after the
        // count: nothing glues the two ends together.
        if result.stdout.droppedBytes > 0 { add(tail(of: result.stdout), as: "stdout_tail", to: &json) }
        if result.stderr.droppedBytes > 0 { add(tail(of: result.stderr), as: "stderr_tail", to: &json) }
        json.add("pipes_force_closed", result.pipesForceClosed)
        json.add("lingering_killed", result.lingeringKilled)
        json.add("leader_reaped", result.leaderReaped)
        json.add("pid", result.pid)
        json.add("containment", result.containment.description == "cgroup" ? "cgroup" : "process_group")
        json.addRaw("killed", processes(result.killed))
        json.add("escapees_killed", result.escapeesKilled)
        json.addRaw("pipe_holders", "[" + result.pipeHolders.map { holder in
            var entry = JSONWriter()
            entry.add("pid", holder.process.pid)
            entry.add("command", holder.process.command)
            entry.add("killed", holder.killed)
            return entry.text
        }.joined(separator: ",") + "]")
        json.addRaw("left_running", processes(result.leftRunning))
        json.add("left_running_count", result.leftRunningCount)
        if let cpu = result.cpuTime { json.add("cpu_s", (cpu.seconds * 1e6).rounded() / 1e6) }
        json.add("job_id", result.id.rawValue)
        json.add("started_at", result.timing.startedAt.rfc3339)
        json.add("duration_s", durationSeconds(result))
        if let error = errorMessage(result.outcome) { json.add("error", error) }
        if case .failedToStart(let failure) = result.outcome {
            json.add("errno", failure.errno)
            json.add("stage", failure.stage.name)
        }
        return json.text
    }

    /// The result of a job whose runner died under it (a crashed agent),
    /// rebuilt from what was journaled: the same schema, outcome `lost`.
    public static func lost(id: String, reason: String, stdout: [UInt8], stderr: [UInt8], pid: Int32?,
                            killed: [ProcessSummary], startedAt: WallClockTime?) -> String {
        var json = JSONWriter()
        json.add("id", id)
        json.add("outcome", "lost")
        json.addRaw("exit_code", "null")
        json.addRaw("signal", "null")
        add(CapturedOutput(bytes: stdout), as: "stdout", to: &json)
        add(CapturedOutput(bytes: stderr), as: "stderr", to: &json)
        json.add("pid", pid)
        json.addRaw("killed", processes(killed))
        json.add("started_at", startedAt?.rfc3339)
        json.add("error", reason)
        return json.text
    }

    /// The result line for a spec that could not be read.
    public static func invalidSpec(_ error: SpecError, line: Int?) -> String {
        var json = JSONWriter()
        json.add("id", error.id)
        json.add("outcome", "invalid_spec")
        json.add("exit_code", nil as Int?)
        json.add("signal", nil as String?)
        if let line { json.add("line", line) }
        if let field = error.field { json.add("field", field) }
        json.add("error", error.description)
        return json.text
    }

    private static func processes(_ list: [ProcessSummary]) -> String {
        "[" + list.map { process in
            var entry = JSONWriter()
            entry.add("pid", process.pid)
            entry.add("command", process.command)
            return entry.text
        }.joined(separator: ",") + "]"
    }

    /// What a result's `stdout`/`stderr` field holds: all that was kept,
    /// or, when bytes were dropped, the kept head (the bytes before them).
    public static func head(of output: CapturedOutput) -> ArraySlice<UInt8> {
        output.droppedBytes > 0 ? output.bytes[..<min(output.headCount, output.bytes.count)] : output.bytes[...]
    }

    /// The `stdout_tail`/`stderr_tail` field: the kept bytes after the dropped ones.
    public static func tail(of output: CapturedOutput) -> ArraySlice<UInt8> {
        output.droppedBytes > 0 ? output.bytes[min(output.headCount, output.bytes.count)...] : []
    }

    private static func add(_ output: CapturedOutput, as name: String, to json: inout JSONWriter) {
        add(output.bytes[...], as: name, to: &json)
    }

    private static func add(_ bytes: ArraySlice<UInt8>, as name: String, to json: inout JSONWriter) {
        if let text = String(validating: bytes, as: UTF8.self) {
            json.add(name, text)
        } else {
            json.add(name + "_base64", Data(bytes).base64EncodedString())
        }
    }
}

extension Duration {
    /// The duration in seconds, as JSON and logs print it.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
