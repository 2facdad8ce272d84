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
        /// Bumped each time it becomes idle: an entry of `idleOrder` with
        /// an older value is stale (it has been busy since).
        var idleGeneration = 0
    }
    private struct State {
        var nextID = 0
        var open: [Int: Connection] = [:]
        /// Connections in the order they became idle, oldest first, with
        /// the generation they had then. Finding the idlest is amortized
        /// O(1): an accept at the cap (every accept, in a flood) must not
        /// walk every connection.
        var idleOrder: [(id: Int, generation: Int)] = []
        var idleHead = 0

        mutating func becameIdle(_ id: Int) {
            guard open[id] != nil else { return }
            open[id]!.idleGeneration += 1
            idleOrder.append((id, open[id]!.idleGeneration))
            // Stale entries (busy since, or closed) are dropped once they
            // outnumber the connections: the list stays O(open).
            if idleOrder.count - idleHead > 2 * open.count + 64 {
                idleOrder = idleOrder[idleHead...].filter { isCurrent($0) }
                idleHead = 0
            }
        }

        func isCurrent(_ entry: (id: Int, generation: Int)) -> Bool {
            guard let connection = open[entry.id] else { return false }
            return connection.requestsInFlight == 0 && connection.idleGeneration == entry.generation
        }

        /// Removes and returns the connection idle longest, if any is idle.
        mutating func takeIdlest() -> Connection? {
            defer {
                if idleHead > 1024, idleHead * 2 > idleOrder.count {
                    idleOrder.removeFirst(idleHead)
                    idleHead = 0
                }
            }
            while idleHead < idleOrder.count {
                let entry = idleOrder[idleHead]
                idleHead += 1
                if isCurrent(entry) { return open.removeValue(forKey: entry.id) }
            }
            return nil
        }
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
                guard let idlest = state.takeIdlest() else { return (state.nextID, channel) }  // all busy: not this one
                closing = idlest.channel
            }
            state.open[state.nextID] = Connection(channel: channel)
            state.becameIdle(state.nextID)  // no request yet: idle
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
            state.open[id] = connection
            if connection.requestsInFlight == 0 { state.becameIdle(id) }
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
