import Corral
import Logging

/// Everything `corral agent` is told at start.
public struct AgentConfiguration: Sendable {
    /// Where to listen; loopback unless a token is set.
    public var listen = ListenAddress(host: "127.0.0.1", port: 7070)
    /// Holds `journal.sqlite` (and its WAL).
    public var dataDirectory = "./corral-data"
    /// The bearer token every API call and the page must present; nil means
    /// no authentication, which is allowed on loopback only.
    public var token: String?
    /// Jobs running at once (more wait in the queue).
    public var maxJobs = 64
    /// Jobs waiting at most; a submit beyond that is answered 429.
    public var maxQueued = 10_000
    /// Kept output per stream at most; a spec may ask for less, not more.
    public var maxOutputBytes = 1 << 20
    /// Deadline for a spec that gives none; nil lets such jobs run unbounded.
    public var defaultTimeout: Duration? = .seconds(3600)
    /// Request bodies larger than this are refused with 413.
    public var maxBodyBytes = 1 << 20
    /// Finished jobs kept at most; older ones are pruned.
    public var keepJobs = 10_000
    /// Finished jobs older than this are pruned.
    public var keepFor: Duration = .seconds(7 * 86_400)
    /// Users a spec may name in `user` (only when the agent runs as root).
    public var allowedUsers: Set<String> = []
    /// Groups a spec may name in `group`, besides its user's primary group
    /// (names or numeric gids; a `group` always needs an allowed `user`).
    public var allowedGroups: Set<String> = []
    /// On SIGTERM/SIGINT, how long running jobs get to finish before the stop sequence.
    public var shutdownGrace: Duration = .seconds(10)
    /// On a drain (SIGUSR1, `corral agent drain`), how long running and
    /// queued jobs get to finish before the stop sequence.
    public var drainTimeout: Duration = .seconds(3600)
    /// How often output and state changes are written to the journal.
    public var flushInterval: Duration = .milliseconds(100)
    /// How often an idle event stream sends a keep-alive comment.
    public var keepAliveInterval: Duration = .seconds(15)
    /// A write of an event stream that does not complete within this
    /// (the client stopped reading) closes the connection.
    public var writeTimeout: Duration = .seconds(10)
    /// Connections open at once at most (and at most half the descriptor
    /// limit); over it, the longest-idle connection is closed.
    public var maxConnections = 1024
    /// A connection with no request in progress for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// The agent's log level: `debug` adds a line per request and per submit.
    public var logLevel: Logger.Level = .info
    /// Containment tier for the jobs.
    public var containment: ContainmentSetting = .automatic

    public init() {}

    /// Refuses configurations that would be unsafe or cannot work, with a
    /// message saying what to change.
    public func validate() throws(AgentError) {
        if !listen.isLoopback && token == nil {
            throw AgentError("refusing to listen on \(listen) without a token: anyone who can reach it could run commands on this machine. Pass --token-file FILE, or listen on 127.0.0.1")
        }
        if let token, token.isEmpty { throw AgentError("the token file is empty") }
        if maxJobs < 1 { throw AgentError("--max-jobs must be at least 1") }
        if maxQueued < 0 { throw AgentError("--max-queued must not be negative") }
        if keepJobs < 1 { throw AgentError("--keep-jobs must be at least 1") }
        if maxConnections < 1 { throw AgentError("--max-connections must be at least 1") }
        if idleTimeout <= .zero { throw AgentError("--idle-timeout must be more than 0") }
        if writeTimeout <= .zero { throw AgentError("--write-timeout must be more than 0") }
    }
}

/// An agent setup or start-up problem, said plainly.
public struct AgentError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
