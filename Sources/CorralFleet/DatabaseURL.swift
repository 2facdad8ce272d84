import Foundation
import Logging
import PostgresNIO

/// Where PostgreSQL is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
/// with optional query parameters `sslmode=disable|prefer|require`
/// (default prefer) and `host=/socket/dir` (a Unix socket, as libpq reads
/// it; the URL's host part is then empty). Validated when parsed; the
/// password never appears in `description`.
package struct DatabaseURL: Sendable, CustomStringConvertible {
    package enum TLSMode: String, Sendable { case disable, prefer, require }

    package var user: String
    package var password: String?
    package var host: String?
    package var port: Int
    package var socketDirectory: String?
    package var database: String
    package var tls: TLSMode

    package init(parsing text: String) throws(FleetError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let components = URLComponents(string: trimmed),
              let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql" else {
            throw FleetError("a database URL is postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        guard let user = components.user, !user.isEmpty else {
            throw FleetError("the database URL names no user (postgres://USER@HOST/DATABASE)")
        }
        self.user = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else {
            throw FleetError("the database URL names no database (postgres://USER@HOST/DATABASE)")
        }
        database = path.removingPercentEncoding ?? path
        port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw FleetError("the database URL's port must be 1 to 65535") }
        tls = .prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw FleetError("sslmode in the database URL expects disable, prefer or require")
                }
                tls = mode
            case "host":
                guard let directory = item.value, directory.hasPrefix("/") else {
                    throw FleetError("host= in the database URL expects a socket directory (an absolute path)")
                }
                socketDirectory = directory
            default:
                throw FleetError("unknown parameter \(item.name) in the database URL (sslmode and host are known)")
            }
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 }
        guard host != nil || socketDirectory != nil else {
            throw FleetError("the database URL names no host (postgres://USER@HOST/DATABASE, or ?host=/socket/dir)")
        }
    }

    /// The URL with the password replaced, for logs and messages.
    package var description: String {
        let place = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)\(password == nil ? "" : ":***")@\(host ?? ""):\(port)/\(database)\(place)"
    }

    /// The same server, another database (the tests make one each).
    package func with(database name: String) -> DatabaseURL {
        var copy = self
        copy.database = name
        return copy
    }

    /// A pool of at most `connections` connections.
    package func client(connections: Int, logger: Logger) -> PostgresClient {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user,
                                  password: password, database: database)
        } else {
            let mode: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: mode = .disable
            case .prefer: mode = .prefer(.makeClientConfiguration())
            case .require: mode = .require(.makeClientConfiguration())
            }
            configuration = .init(host: host ?? "127.0.0.1", port: port, username: user, password: password,
                                  database: database, tls: mode)
        }
        configuration.options.maximumConnections = connections
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.connectionIdleTimeout = .seconds(60)
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }
}

extension DatabaseURL {
    /// Connects once, straight (not through a pool, which retries quietly
    /// and leaves a caller with "no answer"), and hangs up: an error is the
    /// server's own reason (a wrong password or role, a missing database)
    /// or the network's.
    package func probe(logger: Logger) async throws {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user,
                                  password: password, database: database)
        } else {
            let mode: PostgresConnection.Configuration.TLS
            switch tls {
            case .disable: mode = .disable
            case .prefer: mode = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: mode = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host ?? "127.0.0.1", port: port, username: user, password: password,
                                  database: database, tls: mode)
        }
        configuration.options.connectTimeout = .seconds(5)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        try? await connection.close()
    }

    /// Whether the server refused for good: a failed login (class 28), no
    /// such database (3D000), no permission (42501). Trying again will not
    /// help. Anything else may pass: the database unreachable, starting up
    /// (57P03), out of connections (53300).
    package static func refusedByServer(_ error: any Error) -> Bool {
        guard let state = sqlState(of: error) else { return false }
        return state.hasPrefix("28") || state == "3D000" || state == "42501"
    }

    /// The SQLSTATE the server answered a call with; nil if it did not
    /// answer (unreachable, no connection, a time limit).
    package static func sqlState(of error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// An error of a database call in words: the server's message and
    /// SQLSTATE when it answered, else the error's own account.
    package static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError, let info = psql.serverInfo, let message = info[.message] {
            if info[.sqlState] == "42883" {
                // A function of a newer migration: agents upgraded first.
                return "the database's fleet schema is older than this corral (\(message)): "
                    + "start the newer corral server on it first (it migrates the database at start)"
            }
            return "the database server said: \(message)" + (info[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
        }
        if let fleet = error as? FleetError { return fleet.description }
        return String(reflecting: error)
    }
}

/// A fleet failure with a message for the user.
package struct FleetError: Error, Sendable, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// Runs `body`, or throws once `limit` passed (the body is cancelled): a
/// database that does not answer cannot hold a loop that must go on.
package func withTimeLimit<T: Sendable>(_ limit: Duration, _ what: String,
                                        _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw FleetError("\(what): no answer from the database within \(limit)")
        }
        return value
    }
}
