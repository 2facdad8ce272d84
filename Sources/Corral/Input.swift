/// What a job reads on its standard input.
public enum Input: Hashable, Sendable {
    /// `/dev/null`: the job reads end-of-file at once.
    case null
    /// These bytes, written through a pipe that is closed after the last one.
    case bytes([UInt8])

    /// These UTF-8 bytes.
    public static func text(_ text: String) -> Input { .bytes(Array(text.utf8)) }
}
