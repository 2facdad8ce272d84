/// What a job reads on its standard input.
public enum Input: Hashable, Sendable {
    /// `/dev/null`: the job reads end-of-file at once.
    case null
    /// These bytes, written through a pipe that is closed after the last one.
    case bytes([UInt8])
    /// This process's own standard input (fd 0), shared with the job, as
    /// `timeout(1)` does. For command-line tools that wrap one command.
    case inherit

    /// These UTF-8 bytes.
    public static func text(_ text: String) -> Input { .bytes(Array(text.utf8)) }
}
