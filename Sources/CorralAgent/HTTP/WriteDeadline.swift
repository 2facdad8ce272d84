import NIOCore
import Synchronization

/// A deadline on each write of a long response (an event stream): when a
/// write has not completed within `limit` (the client stopped reading and
/// the socket's buffers are full), the connection is closed, which fails
/// the write and ends the response. So a stalled client costs neither
/// memory nor a shutdown that waits for it.
final class WriteDeadline: Sendable {
    private final class Pending: Sendable {
        let since = Mutex<ContinuousClock.Instant?>(nil)
        let expired = Mutex(false)
    }
    private let pending = Pending()
    private let watchdog: Task<Void, Never>

    /// While `shuttingDown()` says so, the deadline is `shutdownLimit` at
    /// most: a stalled client does not hold up the agent's exit.
    init(channel: any Channel, limit: Duration, shutdownLimit: Duration = .seconds(1),
         shuttingDown: @escaping @Sendable () -> Bool) {
        let pending = self.pending
        let tick = min(limit, shutdownLimit) / 4
        watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                let current = shuttingDown() ? min(limit, shutdownLimit) : limit
                guard let since = pending.since.withLock({ $0 }), ContinuousClock.now - since > current else { continue }
                pending.expired.withLock { $0 = true }
                channel.close(promise: nil)
                return
            }
        }
    }

    /// Runs one write under the deadline.
    func write(_ body: () async throws -> Void) async throws {
        pending.since.withLock { $0 = .now }
        defer { pending.since.withLock { $0 = nil } }
        try await body()
    }

    /// Whether a write missed the deadline (and the connection was closed).
    var expired: Bool { pending.expired.withLock { $0 } }

    /// Stops watching (the response is over).
    func cancel() { watchdog.cancel() }
}
