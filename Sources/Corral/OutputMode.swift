/// Where a job's standard output and standard error go. A struct with
/// static values rather than an enum, so adding a mode breaks no caller.
public struct OutputMode: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case separate, combined, discarded, inherit, inheritCombined
    }

    let kind: Kind

    /// Each captured on its own (`JobResult.stdout`, `JobResult.stderr`).
    public static let separate = OutputMode(kind: .separate)
    /// Both into one pipe, in the order the job wrote them, like `2>&1`;
    /// captured in `JobResult.stdout` (`stderr` stays empty).
    public static let combined = OutputMode(kind: .combined)
    /// Both to `/dev/null`.
    public static let discarded = OutputMode(kind: .discarded)
    /// The job writes straight to this process's standard output and
    /// standard error, as if run without Corral: nothing is captured and
    /// the loop never touches the bytes, so a reader that stops reading
    /// holds up the job's writes, never a deadline, and a reader that goes
    /// away gives the job its own EPIPE/SIGPIPE (what `corral run` does).
    public static let inherit = OutputMode(kind: .inherit)
    /// Like `inherit`, with standard error sent to this process's standard
    /// output too (`2>&1`).
    public static let inheritCombined = OutputMode(kind: .inheritCombined)

    public var description: String {
        switch kind {
        case .separate: return "separate"
        case .combined: return "combined"
        case .discarded: return "discarded"
        case .inherit: return "inherit"
        case .inheritCombined: return "inherit_combined"
        }
    }
}

/// How much of each stream a result keeps. A struct with static factories
/// rather than an enum, so a new kind of limit breaks no caller.
public struct OutputLimit: Hashable, Sendable, CustomStringConvertible {
    /// nil: keep everything.
    let limit: Int?

    /// Keep at most this many bytes: the first half and the last half of the
    /// stream, with the exact count of the bytes dropped between them. The
    /// pipe is always drained, so a verbose job is never blocked.
    public static func bytes(_ count: Int) -> OutputLimit { OutputLimit(limit: count) }
    /// Keep everything.
    public static let unlimited = OutputLimit(limit: nil)

    /// 1 MiB per stream.
    public static let `default` = OutputLimit.bytes(1 << 20)

    /// The byte limit; nil when unlimited.
    public var bytes: Int? { limit }

    public var description: String { limit.map { "\($0) bytes" } ?? "unlimited" }
}
