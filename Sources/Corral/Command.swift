/// What a job runs. A struct with static factories rather than an enum, so
/// adding a kind of command breaks no caller.
public struct Command: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case executable(String, arguments: [String])
        case shell(String)
    }

    let kind: Kind

    /// An executable and its arguments (not including `argv[0]`). A name
    /// without a `/` is looked up in the job's `PATH`, as `execvp` does; no
    /// shell is involved, so nothing is expanded.
    public static func executable(_ name: String, arguments: [String] = []) -> Command {
        Command(kind: .executable(name, arguments: arguments))
    }

    /// Shell text, run as `/bin/sh -c TEXT`.
    public static func shell(_ text: String) -> Command { Command(kind: .shell(text)) }

    /// The text of a `shell(_:)` command; nil for an executable.
    public var shellText: String? {
        if case .shell(let text) = kind { text } else { nil }
    }

    /// `argv`, including `argv[0]` (`/bin/sh`, `-c`, TEXT for shell text).
    public var argv: [String] {
        switch kind {
        case .executable(let name, let arguments): [name] + arguments
        case .shell(let text): ["/bin/sh", "-c", text]
        }
    }

    /// The name or path that is executed.
    var program: String {
        switch kind {
        case .executable(let name, _): name
        case .shell: "/bin/sh"
        }
    }

    /// For people: the shell text, or the executable and its arguments
    /// joined by spaces (not quoted).
    public var description: String { shellText ?? argv.joined(separator: " ") }
}
