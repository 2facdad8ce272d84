/// The runner-assigned identity of a job, unique on this machine: the job
/// sees it as `CORRAL_JOB_ID`, which survives `setsid` and double forks.
public struct JobID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}
