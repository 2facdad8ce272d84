/// A `--user` or `--group` value, and the library's field names as flags.
enum IdentityText {
    /// The id for a number (0 to 4294967294), nil for a name; anything that
    /// looks like a number but is not a valid id is an error, never a name.
    static func parse(_ text: String, flag: String) throws(CLIError) -> UInt32? {
        let looksNumeric = text.first == "-" || text.first == "+" || (text.first.map { ("0"..."9").contains($0) } ?? false)
        if text.isEmpty { throw CLIError("\(flag): is empty") }
        guard looksNumeric else { return nil }
        guard text.allSatisfy({ ("0"..."9").contains($0) }), let id = UInt32(text), id != UInt32.max else {
            throw CLIError("\(flag): expected a name or a number from 0 to 4294967294, got '\(text)'")
        }
        return id
    }

    /// `JobSpec.validate()`'s "killGrace: is negative" as "--kill-after: is negative".
    static func flagMessage(_ message: String) -> String {
        let flags = [
            "command": "COMMAND", "workingDirectory": "--cwd", "environment": "--env", "user": "--user",
            "group": "--group", "timeout": "--timeout", "killGrace": "--kill-after", "drainTimeout": "--drain",
            "stopSignal": "--signal", "outputLimit": "--max-output",
        ]
        guard let colon = message.firstIndex(of: ":") else { return message }
        let field = String(message[..<colon])
        if let flag = flags[field] { return flag + message[colon...] }
        if field.hasPrefix("arguments[") { return "COMMAND" + message[colon...] }
        return message
    }
}
