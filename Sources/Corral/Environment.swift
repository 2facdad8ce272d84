/// The environment a job starts with. Whatever is chosen, the job also gets
/// `CORRAL_JOB_ID=<id>`.
public struct Environment: Hashable, Sendable {
    enum Base: Hashable, Sendable {
        case inherit
        case exactly([String: String])
    }

    let base: Base
    /// Values to set (non-nil) or remove (nil) on top of the base.
    let changes: [String: String?]

    /// This process's environment at the time the job is spawned.
    public static let inherit = Environment(base: .inherit, changes: [:])

    /// This process's environment, with `changes` applied: a value sets a
    /// variable, `nil` removes it. Names are matched against this
    /// process's variables byte for byte (see `otherSpelling`).
    public static func inherit(updating changes: [String: String?]) -> Environment {
        Environment(base: .inherit, changes: changes)
    }

    /// Exactly these variables and nothing of this process's.
    public static func custom(_ variables: [String: String]) -> Environment {
        Environment(base: .exactly(variables), changes: [:])
    }

    /// Whether `name` can name a variable: not empty, no `=`, no NUL.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("=") && !name.utf8.contains(0)
    }

    /// The key of `variables` that is `name` to Swift but not byte for
    /// byte (a precomposed `é` and `e` + U+0301: Swift compares strings by
    /// canonical equivalence, the kernel by bytes), or nil. A dictionary
    /// holds one of the two, with the first spelling and the last value,
    /// so the edges that build one refuse such a pair instead.
    public static func otherSpelling<Value>(of name: String, in variables: [String: Value]) -> String? {
        guard let index = variables.index(forKey: name) else { return nil }
        let held = variables.keys[index]
        return held.utf8.elementsEqual(name.utf8) ? nil : held
    }

    /// `name` in double quotes with every scalar past ASCII as `\u{…}`, so
    /// two spellings that print alike read apart in a message.
    public static func spelled(_ name: String) -> String {
        "\"" + name.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "\\u{\(String($0.value, radix: 16))}" }.joined() + "\""
    }

    /// This environment with one more variable set on top.
    public func setting(_ key: String, to value: String) -> Environment {
        var changes = self.changes
        changes[key] = .some(value)
        return Environment(base: base, changes: changes)
    }
}
