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
    /// variable, `nil` removes it.
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

    /// This environment with one more variable set on top.
    public func setting(_ key: String, to value: String) -> Environment {
        var changes = self.changes
        changes[key] = .some(value)
        return Environment(base: base, changes: changes)
    }
}
