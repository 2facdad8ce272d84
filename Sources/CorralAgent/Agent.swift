import Corral
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `corral agent`: the HTTP service in front of one runner and its journal.
public enum Agent {
    /// Runs until SIGTERM or SIGINT, then shuts down gracefully: no new jobs,
    /// the running ones get `shutdownGrace`, then the stop sequence; every
    /// result is journaled before this returns. SIGUSR1 drains instead:
    /// the same, with `drainTimeout` for the jobs (queued ones included).
    ///
    /// - Parameter onListening: called with the page's URL once listening.
    public static func run(_ configuration: AgentConfiguration, version: String,
                           onListening: @escaping @Sendable (String) -> Void) async throws {
        try await run(configuration, version: version, companion: nil, onListening: onListening)
    }

    /// As `run`, with a companion service over the agent's jobs (fleet
    /// mode's link to PostgreSQL). It starts after the HTTP server and is
    /// asked to stop after the jobs were stopped and journaled, so its last
    /// pass can report their outcomes.
    package static func run(_ configuration: AgentConfiguration, version: String,
                            companion: (@Sendable (LocalJobs, Logger) -> any Service)?,
                            onListening: @escaping @Sendable (String) -> Void) async throws {
        try configuration.validate()
        var logger = Logger(label: "corral.agent")
        logger.logLevel = configuration.logLevel
        let service = try JobService(configuration: configuration, version: version, logger: logger)

        let router = Router(context: AgentRequestContext.self)
        let routes = KnownRoutes()
        _ = RequestMetrics.registry  // MetricsSystem bootstrapped before the middleware records
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: RequestLog(logger: logger))
        router.add(middleware: SecurityHeaders())
        router.add(middleware: AccessMiddleware(token: configuration.token.map(TokenCheck.init),
                                                listensOnLoopback: configuration.listen.isLoopback, routes: routes))
        ServiceRoutes(service: service).add(to: router)
        JobRoutes(service: service).add(to: router)
        OpenAPIDocument.add(to: router)
        routes.record(router)

        let listen = configuration.listen
        var httpLogger = logger
        httpLogger.logLevel = .warning
        let connections = ConnectionLimit(limit: ConnectionLimit.effective(configured: configuration.maxConnections))
        if connections.limit < configuration.maxConnections {
            logger.notice("at most \(connections.limit) connections: half the descriptor limit (RLIMIT_NOFILE)")
        }
        let idle = configuration.idleTimeout.components
        let app = Application(
            router: router,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [connections.handler()],
                idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000))),
            configuration: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port),
                                                    serverName: "corral/\(version)", backlog: 4096),
            onServerRunning: { channel in
                CloseOnExec.markSockets()
                let port = channel.localAddress?.port ?? listen.port
                let host = listen.host.contains(":") ? "[\(listen.host)]" : listen.host
                service.logStart(listening: "\(host):\(port)")
                onListening("http://\(host):\(port)/")
            },
            logger: httpLogger)
        // SIGTERM, SIGINT and SIGUSR1 are the agent's own (StopSignals), so
        // that a drain can still be cut short by SIGTERM.
        let group = ServiceGroup(configuration: .init(
            services: [app] + (companion.map { [$0(LocalJobs(service: service), logger)] } ?? []) + [AgentService(service: service)],
            gracefulShutdownSignals: [],
            logger: logger))
        let hangups = await HangupSignal.ignore(logger: logger)
        let stops = await StopSignals.watch(service: service, logger: logger) {
            await group.triggerGracefulShutdown()
        }
        do {
            try await group.run()
        } catch let error as IOError where error.description.hasPrefix("bind(") {
            hangups.cancel()
            stops.cancel()
            // NIO's text names its own function ("bind(descriptor:ptr:bytes:): …").
            throw AgentError("cannot listen on \(configuration.listen): \(String(cString: strerror(error.errnoCode)))")
        }
        hangups.cancel()
        stops.cancel()
        service.endRun()
        if let problem = service.shutdownProblem {
            throw AgentError("shut down with results missing from the journal: \(problem)")
        }
    }
}

/// The agent's own lifecycle under the service group: the journal writer
/// and retention while running; on graceful shutdown (before the HTTP
/// server stops) the job shutdown, so clients see 503 meanwhile.
struct AgentService: Service {
    let service: JobService

    func run() async throws {
        let writer = Task { await service.runWriter() }
        let pruner = Task {
            while !Task.isCancelled {
                await service.prune()
                try? await Task.sleep(for: .seconds(60))
            }
        }
        let watcher = Task {
            while !Task.isCancelled {
                service.checkJournalFile()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        try? await gracefulShutdown()
        pruner.cancel()
        watcher.cancel()
        await service.shutdown(writerTask: writer)
    }
}
