/// Everything that describes one job: a plain value, safe to build anywhere
/// and to send to any runner.
///
/// ```swift
/// var spec = JobSpec(.shell("make test"))
/// spec.timeout = .seconds(30)
/// let result = try await runner.run(spec)
/// ```
public struct JobSpec: Hashable, Sendable {
    /// What to run.
    public var command: Command
    /// A name of the caller's choosing, carried into the result unchanged.
    public var name: String?
    /// The environment; `.inherit` by default.
    public var environment: Environment = .inherit
    /// The working directory; this process's by default.
    public var workingDirectory: String?
    /// Run as this user (its primary group and supplementary groups too,
    /// unless `group` is given). Needs root.
    public var user: UserIdentity?
    /// Run with this group. Needs root.
    public var group: GroupIdentity?
    /// Standard input; `/dev/null` by default.
    public var input: Input = .null
    /// Where standard output and standard error go.
    public var output: OutputMode = .separate
    /// How much of each stream is kept in the result.
    public var outputLimit: OutputLimit = .default
    /// How long the job may run, counted from its spawn; none by default.
    public var timeout: Duration?
    /// Sent to the whole process group on timeout or cancellation.
    public var stopSignal: Signal = .terminate
    /// How long after the stop signal SIGKILL follows.
    public var killGrace: Duration = .seconds(2)
    /// How long after the leader exits to wait for end-of-file on the
    /// output pipes before force-closing them: descendants that left the
    /// process group may still hold them.
    public var drainTimeout: Duration = .seconds(1)
    /// What happens to the rest of the group when the leader exits.
    public var lingering: LingeringPolicy = .kill

    public init(_ command: Command) {
        self.command = command
    }

    /// The longest `timeout`, `killGrace` or `drainTimeout` accepted: 3650
    /// days. Past it `validate()` refuses the spec, so no deadline
    /// arithmetic can overflow.
    public static let maximumDuration = Duration.seconds(3650 * 86_400)

    /// The uid and gid that mean "unchanged" to setuid(2) and setgid(2):
    /// never accepted as an identity.
    static let unchangedID = UInt32.max

    /// Checks the spec; throws `CorralError.invalidSpec` naming the field.
    public func validate() throws(CorralError) {
        func invalid(_ field: String, _ message: String) -> CorralError {
            CorralError(.invalidSpec, "\(field): \(message)")
        }
        switch command.kind {
        case .executable(let name, let arguments):
            if name.isEmpty { throw invalid("command", "the executable name is empty") }
            if name.utf8.contains(0) { throw invalid("command", "the executable name contains a NUL byte") }
            if let index = arguments.firstIndex(where: { $0.utf8.contains(0) }) {
                throw invalid("arguments[\(index)]", "contains a NUL byte")
            }
        case .shell(let text):
            if text.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\n" }) {
                throw invalid("command", "the shell command is empty")
            }
            if text.utf8.contains(0) { throw invalid("command", "the shell command contains a NUL byte") }
        }
        if let directory = workingDirectory {
            if directory.isEmpty { throw invalid("workingDirectory", "is empty") }
            if directory.utf8.contains(0) { throw invalid("workingDirectory", "contains a NUL byte") }
        }
        var variables = environment.changes.mapValues { $0 ?? "" }
        if case .exactly(let given) = environment.base { variables.merge(given) { change, _ in change } }
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) {
            if !Environment.isValidName(key) {
                throw invalid("environment", "invalid variable name \(String(reflecting: key))")
            }
            if value.utf8.contains(0) { throw invalid("environment", "the value of \(key) contains a NUL byte") }
        }
        switch user?.kind {
        case .name(let name)?:
            if name.isEmpty { throw invalid("user", "is empty") }
            if name.utf8.contains(0) { throw invalid("user", "contains a NUL byte") }
        case .id(JobSpec.unchangedID)?: throw invalid("user", "\(JobSpec.unchangedID) is not a uid (it means 'unchanged')")
        default: break
        }
        switch group?.kind {
        case .name(let name)?:
            if name.isEmpty { throw invalid("group", "is empty") }
            if name.utf8.contains(0) { throw invalid("group", "contains a NUL byte") }
        case .id(JobSpec.unchangedID)?: throw invalid("group", "\(JobSpec.unchangedID) is not a gid (it means 'unchanged')")
        default: break
        }
        if let limit = outputLimit.bytes, limit < 0 { throw invalid("outputLimit", "is negative") }
        if let timeout {
            if timeout <= .zero { throw invalid("timeout", "must be more than zero (nil for no timeout)") }
            if timeout > JobSpec.maximumDuration { throw invalid("timeout", "is more than the maximum of 3650 days") }
        }
        for (field, value) in [("killGrace", killGrace), ("drainTimeout", drainTimeout)] {
            if value < .zero { throw invalid(field, "is negative") }
            if value > JobSpec.maximumDuration { throw invalid(field, "is more than the maximum of 3650 days") }
        }
        if stopSignal.rawValue <= 0 || stopSignal.rawValue >= 65 {
            throw invalid("stopSignal", "\(stopSignal.rawValue) is not a signal number")
        }
    }
}
