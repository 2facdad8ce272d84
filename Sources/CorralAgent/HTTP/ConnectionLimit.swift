import NIOCore
import NIOHTTPTypes
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// At most `limit` connections at once, so that idle or slow clients
/// cannot take every descriptor the agent has (its jobs need pipes, its
/// journal needs files). A connection over the limit closes the one that
/// has been idle longest (no request in progress: a slow client that never
/// finished its headers counts as idle); if every connection is busy, the
/// new one is closed. Idle connections also end after `--idle-timeout`
/// (Hummingbird's `idleTimeout`).
final class ConnectionLimit: Sendable {
    private struct Connection {
        let channel: any Channel
        var requestsInFlight = 0
        var idleSince: ContinuousClock.Instant
    }
    private struct State {
        var nextID = 0
        var open: [Int: Connection] = [:]
    }
    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// The limit for a configured maximum: at most half the descriptors
    /// the agent may open (`RLIMIT_NOFILE`), the other half left for jobs
    /// and the journal.
    static func effective(configured: Int) -> Int {
        var limits = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits) == 0, limits.rlim_cur != rlim_t.max else { return configured }
        return max(1, min(configured, Int(limits.rlim_cur / 2)))
    }

    var openCount: Int { state.withLock { $0.open.count } }

    /// A new connection: its id, after making room for it.
    fileprivate func opened(_ channel: any Channel) -> Int {
        let (id, closing) = state.withLock { state -> (Int, (any Channel)?) in
            state.nextID += 1
            var closing: (any Channel)?
            if state.open.count >= limit {
                let idlest = state.open.filter { $0.value.requestsInFlight == 0 }.min { $0.value.idleSince < $1.value.idleSince }
                if let idlest {
                    closing = idlest.value.channel
                    state.open[idlest.key] = nil
                } else {
                    return (state.nextID, channel)  // all busy: not this one
                }
            }
            state.open[state.nextID] = Connection(channel: channel, idleSince: .now)
            return (state.nextID, closing)
        }
        closing?.close(promise: nil)
        return id
    }

    fileprivate func requestStarted(_ id: Int) {
        state.withLock { $0.open[id]?.requestsInFlight += 1 }
    }

    fileprivate func responseEnded(_ id: Int) {
        state.withLock { state in
            guard var connection = state.open[id] else { return }
            connection.requestsInFlight = max(0, connection.requestsInFlight - 1)
            if connection.requestsInFlight == 0 { connection.idleSince = .now }
            state.open[id] = connection
        }
    }

    fileprivate func closed(_ id: Int) {
        _ = state.withLock { $0.open.removeValue(forKey: id) }
    }

    /// One per connection, after the HTTP codec.
    func handler() -> any RemovableChannelHandler { ConnectionLimitHandler(limit: self) }
}

/// Tells `ConnectionLimit` when its connection opens, starts and ends a
/// request, and closes. Runs on the connection's event loop.
private final class ConnectionLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limit: ConnectionLimit
    private var id: Int?

    init(limit: ConnectionLimit) { self.limit = limit }

    func handlerAdded(context: ChannelHandlerContext) {
        id = limit.opened(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let id { limit.closed(id) }
        id = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id { limit.closed(id) }
        id = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let id, case .head = unwrapInboundIn(data) { limit.requestStarted(id) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if let id, case .end = unwrapOutboundIn(data) { limit.responseEnded(id) }
        context.write(data, promise: promise)
    }
}
