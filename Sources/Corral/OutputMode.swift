/// Where a job's standard output and standard error go.
public enum OutputMode: Hashable, Sendable {
    /// Each captured on its own (`JobResult.stdout`, `JobResult.stderr`).
    case separate
    /// Both into one pipe, in the order the job wrote them, like `2>&1`;
    /// captured in `JobResult.stdout` (`stderr` stays empty).
    case combined
    /// Both to `/dev/null`.
    case discarded
}

/// How much of each stream a result keeps.
public enum OutputLimit: Hashable, Sendable {
    /// Keep at most this many bytes: the first half and the last half of the
    /// stream, with the exact count of the bytes dropped between them. The
    /// pipe is always drained, so a verbose job is never blocked.
    case bytes(Int)
    /// Keep everything.
    case unlimited

    /// 1 MiB per stream.
    public static let `default` = OutputLimit.bytes(1 << 20)
}
