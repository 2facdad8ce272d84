import Logging
import PostgresNIO
import Synchronization

/// A PostgreSQL client that is replaced by a fresh one while its calls
/// keep failing.
///
/// Why by hand: postgres-nio's pool backs off its reconnection attempts
/// exponentially (100 ms × 1.25ⁿ, up to a minute), and no option bounds
/// that. After a database outage of a few minutes a client would wait up
/// to a minute after the database is back before it tried again: longer
/// than the server's default agent TTL, so agents would be called `down`
/// and their outcomes, and the server's answers, would wait that long. A
/// fresh client has no backoff history, so replacing one that has failed
/// for `renewAfter` (and at most once per `renewAfter`) bounds the wait
/// after an outage by about `renewAfter` / 4 (the backoff a fresh client
/// reaches within that time), at the cost of a few connection attempts
/// per `renewAfter` while the database is down.
///
/// Whoever calls the database regularly reports how its calls went (the
/// agent's loop; the server's reaper); everyone takes `client` afresh for
/// each piece of work. An error the database itself answered (a failed
/// statement) proves the connection works and renews nothing.
///
/// The pools run in detached tasks, ended by `close()` or a renewal: a
/// pool must not end with the service that happened to renew it (a
/// pool's `run` ends at its task's graceful shutdown).
final class RenewingClient: Sendable {
    private struct State {
        var client: PostgresClient
        var runTask: Task<Void, Never>
        var createdAt: ContinuousClock.Instant
        var failingSince: ContinuousClock.Instant?
        var renewals = 0
        var closed = false
    }

    private let make: @Sendable () -> PostgresClient
    private let renewAfter: Duration
    private let state: Mutex<State>

    init(renewAfter: Duration, make: @escaping @Sendable () -> PostgresClient) {
        self.make = make
        self.renewAfter = renewAfter
        let client = make()
        state = Mutex(State(client: client, runTask: Task.detached { await client.run() }, createdAt: .now))
    }

    /// The client to use now.
    var client: PostgresClient { state.withLock { $0.client } }

    /// Clients replaced so far.
    var renewals: Int { state.withLock { $0.renewals } }

    /// A call worked: the client is good.
    func succeeded() { state.withLock { $0.failingSince = nil } }

    /// A call begun at `start` failed with `error` (counted from its
    /// start: a call may wait seconds for a connection before it fails).
    /// Returns true when the client was replaced.
    func failed(_ error: any Error, callStartedAt start: ContinuousClock.Instant) -> Bool {
        if RenewingClient.isAnswer(error) {
            succeeded()
            return false
        }
        let now = ContinuousClock.now
        return state.withLock { state in
            let since = state.failingSince ?? start
            state.failingSince = since
            guard !state.closed, now - since >= renewAfter, now - state.createdAt >= renewAfter else { return false }
            // Ends the old pool: its connections close and its reconnection
            // attempts stop; calls still running on it fail and are retried.
            state.runTask.cancel()
            let fresh = make()
            state.client = fresh
            state.runTask = Task.detached { await fresh.run() }
            state.createdAt = now
            state.renewals += 1
            return true
        }
    }

    /// An error the database answered over a working connection: a
    /// statement's error, except the classes that say the connection or
    /// the server is going away (08 connection exception, 57 operator
    /// intervention: shutdown, crash, starting up).
    static func isAnswer(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server,
              let state = error.serverInfo?[.sqlState] else { return false }
        return !state.hasPrefix("08") && !state.hasPrefix("57")
    }

    /// Ends the current client for good.
    func close() {
        state.withLock { state in
            state.closed = true
            state.runTask.cancel()
        }
    }

    deinit { state.withLock { $0.runTask.cancel() } }
}
