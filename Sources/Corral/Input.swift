/// What a job reads on its standard input. A struct with static values
/// rather than an enum, so adding a source breaks no caller.
public struct Input: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case null
        case bytes([UInt8])
        case inherit
    }

    let kind: Kind

    /// `/dev/null`: the job reads end-of-file at once.
    public static let null = Input(kind: .null)
    /// These bytes, written through a pipe that is closed after the last one.
    public static func bytes(_ bytes: [UInt8]) -> Input { Input(kind: .bytes(bytes)) }
    /// This process's own standard input (fd 0), shared with the job, as
    /// `timeout(1)` does. For command-line tools that wrap one command.
    public static let inherit = Input(kind: .inherit)
    /// These UTF-8 bytes.
    public static func text(_ text: String) -> Input { .bytes(Array(text.utf8)) }

    /// The bytes the job is given, for `bytes(_:)` and `text(_:)`; nil otherwise.
    public var bytes: [UInt8]? {
        if case .bytes(let bytes) = kind { bytes } else { nil }
    }

    public var description: String {
        switch kind {
        case .null: "null"
        case .bytes(let bytes): "bytes(\(bytes.count))"
        case .inherit: "inherit"
        }
    }
}
