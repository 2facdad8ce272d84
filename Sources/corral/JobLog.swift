import Corral

/// GNU parallel's `--joblog` format: a header, then one tab-separated line
/// a job: Seq Host Starttime JobRuntime Send Receive Exitval Signal Command.
struct JobLog {
    let output: FileOutput

    init(output: FileOutput) throws(WriteError) {
        self.output = output
        try output.writeLine(["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"]
            .joined(separator: "\t"))
    }

    func record(sequence: Int, command: String, sent: Int, result: JobResult) throws(WriteError) {
        let start = Double(result.timing.startedAt.nanosecondsSince1970) / 1e9
        var exitValue: Int32 = -1
        var signal: Int32 = 0
        switch result.leaderStatus {
        case .exited(let code)?: exitValue = code
        case .signaled(let killer, _)?: signal = killer.rawValue
        case nil: break
        }
        let fields = [
            String(sequence), ":", format(start, digits: 3), format(result.timing.duration.seconds, digits: 3),
            String(sent), String(result.stdout.totalBytes + result.stderr.totalBytes),
            String(exitValue), String(signal), command.replacingTabsAndNewlines,
        ]
        try output.writeLine(fields.joined(separator: "\t"))
    }
}

private extension String {
    var replacingTabsAndNewlines: String {
        String(map { $0 == "\t" || $0 == "\n" ? " " : $0 })
    }
}

extension Command {
    /// The command as one line of text, for logs.
    var displayText: String {
        shellText ?? argv.joined(separator: " ")
    }
}
