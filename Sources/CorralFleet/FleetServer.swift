import CorralAgent
import CorralFormat
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// What `corral server` is told at start.
package struct ServerConfiguration: Sendable {
    package var database: DatabaseURL
    package var listen = ListenAddress(host: "127.0.0.1", port: 7080)
    /// Required on every API call when set; without one, loopback only.
    package var token: String?
    /// An agent silent this long is down: its running tasks become `lost`.
    package var agentTTL: Duration = .seconds(30)
    package var maxBodyBytes = 1 << 20
    /// Finished runs and their output are kept this many days (by the
    /// run's day, UTC); 0 keeps everything.
    package var keepDays = 30
    package var logLevel: Logger.Level = .info

    package init(database: DatabaseURL) { self.database = database }

    package func validate() throws(FleetError) {
        if token == nil, !listen.isLoopback {
            throw FleetError("--listen \(listen) is not loopback: a token is required (--token-file)")
        }
        if let token, token.isEmpty { throw FleetError("the token file is empty") }
        guard agentTTL >= .milliseconds(500), agentTTL <= .seconds(86_400) else {
            throw FleetError("--agent-ttl must be from 500ms to 1d")
        }
        guard (0...36_500).contains(keepDays) else { throw FleetError("--keep-days must be from 0 (keep everything) to 36500") }
    }
}

/// `corral server`: the fleet's control plane. The HTTP API under `/v1`
/// over PostgreSQL, the schema migrations at start, and the reaper.
package enum FleetServer {
    /// While the reaper's calls fail, a fresh connection pool this often
    /// (`RenewingClient`): the API answers again within a few seconds of
    /// the database's return, whatever the outage's length.
    static let reconnect: Duration = .seconds(10)

    /// How long a start waits for the database to be reachable.
    static let startWait: Duration = .seconds(30)

    /// Connects once before anything else: a refusal by the server (a wrong
    /// password or role, a missing database) ends the start at once with
    /// the server's reason; a database not reachable yet (starting with
    /// the machine) is tried again each second for `startWait`.
    static func connect(_ database: DatabaseURL, logger: Logger) async throws {
        let deadline = ContinuousClock.now + startWait
        while true {
            do {
                try await withTimeLimit(.seconds(10), "connecting") { try await database.probe(logger: logger) }
                return
            } catch {
                if DatabaseURL.refusedByServer(error) || ContinuousClock.now + .seconds(1) >= deadline {
                    throw FleetError("cannot connect to the database \(database): \(DatabaseURL.describe(error))")
                }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    package static func run(_ configuration: ServerConfiguration, version: String,
                            onListening: @escaping @Sendable (String) -> Void) async throws {
        try configuration.validate()
        let logger = {
            var logger = Logger(label: "corral.server")
            logger.logLevel = configuration.logLevel
            return logger
        }()
        var quiet = logger
        quiet.logLevel = .warning
        let database = RenewingClient(renewAfter: FleetServer.reconnect) { [configuration, quiet] in
            configuration.database.client(connections: 10, logger: quiet)
        }
        defer { database.close() }
        try await FleetServer.connect(configuration.database, logger: quiet)
        do {
            let client = database.client
            _ = try await withTimeLimit(.seconds(30), "migrating \(configuration.database)") {
                try await Schema.migrate(client, logger: logger)
            }
        } catch {
            throw FleetError("cannot prepare the database \(configuration.database): \(String(reflecting: error))")
        }

        let api = FleetAPI(link: database, logger: logger, maxBodyBytes: configuration.maxBodyBytes)
        let router = Router(context: BasicRequestContext.self)
        let routes = KnownRoutes()
        router.add(middleware: RequestLog(logger: logger))
        router.add(middleware: SecurityHeaders(policy: FleetPage.policy))
        router.add(middleware: AccessMiddleware(token: configuration.token.map(TokenCheck.init),
                                                listensOnLoopback: configuration.listen.isLoopback, routes: routes,
                                                page: FleetPage.html))
        api.add(to: router)
        FleetPage.add(to: router, queries: FleetQueries(link: database, logger: logger))
        routes.record(router)

        let listen = configuration.listen
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port),
                                                    serverName: "corral-server/\(version)"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                let host = listen.host.contains(":") ? "[\(listen.host)]" : listen.host
                logger.info("corral server started", metadata: [
                    "version": "\(version)", "listen": "\(host):\(port)", "db": "\(configuration.database)",
                    "agent_ttl_s": .stringConvertible(configuration.agentTTL.seconds),
                    "token": "\(configuration.token == nil ? "none" : "required")",
                ])
                onListening("http://\(host):\(port)/")
            },
            logger: quiet)
        let reaper = Reaper(link: database, ttl: configuration.agentTTL, logger: logger)
        let maintenance = Maintenance(link: database, keepDays: configuration.keepDays, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [app, reaper, maintenance, StreamsStop(streams: api.streams)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: quiet))
        try await group.run()
    }
}

/// Marks silent agents down and ends their tasks (`fleet_reap`), a few
/// times per TTL. Any number of servers may run it: the function takes a
/// transaction-level advisory lock, so one reaps at a time.
struct Reaper: Service {
    let link: RenewingClient
    let ttl: Duration
    let logger: Logger

    func run() async throws {
        let interval = max(ttl / 4, .milliseconds(100))
        let ttlText = String(format: "%.3f seconds", ttl.seconds)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let started = ContinuousClock.now
            var failing = false
            do {
                let client = link.client
                let ended = try await withTimeLimit(max(ttl, .seconds(5)), "the reaper") { [client] in
                    var count = 0
                    for try await n in try await client.query("SELECT fleet_reap(\(ttlText)::interval)").decode(Int.self) {
                        count = n
                    }
                    return count
                }
                link.succeeded()
                if ended > 0 { logger.notice("reaper: ended \(ended) tasks of agents silent past the TTL") }
            } catch {
                logger.warning("reaper: \(String(reflecting: error))")
                failing = !RenewingClient.isAnswer(error)
                if link.failed(error, callStartedAt: started) {
                    logger.info("a fresh database connection pool after \(FleetServer.reconnect) of failures",
                                metadata: ["renewals": .stringConvertible(link.renewals)])
                }
            }
            // While it fails, soon again: the reaper's calls are what
            // renew the server's pool, whatever the TTL.
            let wait = failing ? min(interval, .seconds(1)) : interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
        }
    }
}

/// The database's upkeep, at start and every hour: the output partitions
/// of today and tomorrow (so the first run of a day does no DDL), and
/// retention (`fleet_retain`: the output partitions and the finished runs
/// of days older than `keepDays`). Any number of servers may run it: the
/// functions take advisory locks.
struct Maintenance: Service {
    let link: RenewingClient
    let keepDays: Int
    let logger: Logger
    static let interval: Duration = .seconds(3600)

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let client = link.client
                let deleted = try await withTimeLimit(.seconds(300), "the database upkeep") { [client, keepDays] in
                    _ = try await client.query("""
                        SELECT fleet_output_partition((now() AT TIME ZONE 'UTC')::date),
                               fleet_output_partition((now() AT TIME ZONE 'UTC')::date + 1)
                        """).collect()
                    guard keepDays > 0 else { return 0 }
                    var count = 0
                    for try await n in try await client.query("SELECT fleet_retain(\(keepDays)::int)").decode(Int.self) { count = n }
                    return count
                }
                if deleted > 0 { logger.notice("retention: deleted \(deleted) runs older than \(keepDays) days, and their output") }
            } catch {
                logger.warning("database upkeep: \(String(reflecting: error))")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Maintenance.interval) }
        }
    }
}

/// Ends the output event streams when the server shuts down gracefully
/// (they would otherwise hold the shutdown for up to their 10 minutes).
struct StreamsStop: Service {
    let streams: FleetOutputEvents.Count

    func run() async throws {
        try? await gracefulShutdown()
        streams.stop()
    }
}
