#if canImport(CorralFleet)
import ArgumentParser
import CorralAgent
import CorralFleet
import CorralFormat
import Dispatch
import Foundation
import Logging
import Synchronization

/// `corral server`: the fleet's control plane over PostgreSQL.
struct ServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the fleet's control plane: an HTTP API over PostgreSQL that agents take runs from.",
        discussion: """
            Agents join with `corral agent --server-db URL --name HOST`. A run targets hosts by
            name, by label or all, and gets every host's outcome and output. The schema is
            created and migrated at start. The page at / (http://127.0.0.1:7080/ by default)
            lists runs and hosts, starts runs and follows each host's output. See docs/fleet.md.

            Examples:
              corral server --db-file /etc/corral/db-url --listen 0.0.0.0:7080 --token-file /etc/corral/token
              curl -H 'Content-Type: application/json' \\
                   -d '{"target":{"labels":{"role":"web"}},"job":{"shell":"uptime","timeout":"30s"}}' \\
                   http://127.0.0.1:7080/v1/runs
            """)

    @Option(help: ArgumentHelp("The PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require]).", valueName: "url"))
    var db: String?
    @Option(name: .customLong("db-file"), help: ArgumentHelp("A file holding the --db URL (keeps the password out of the process list).", valueName: "file"))
    var dbFile: String?
    @Option(help: ArgumentHelp("Address to listen on; port 0 picks one (default 127.0.0.1:7080).", valueName: "host:port"))
    var listen = "127.0.0.1:7080"
    @Option(name: .customLong("token-file"), help: ArgumentHelp("File holding the bearer token clients must send; required off loopback.", valueName: "file"))
    var tokenFile: String?
    @Option(name: .customLong("agent-ttl"), help: ArgumentHelp("An agent silent this long is down: its running tasks become lost, its queued ones undelivered (default 30s).", valueName: "duration"))
    var agentTTL = "30s"
    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info).", valueName: "level"))
    var logLevel = "info"

    func run() throws {
        let urlText: String
        switch (db, dbFile) {
        case (nil, nil): throw ValidationError("give the database: --db URL or --db-file FILE")
        case (_?, _?): throw ValidationError("give --db or --db-file, not both")
        case (let url?, nil): urlText = url
        case (nil, let file?):
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--db-file: cannot read \(file)") }
            urlText = String(decoding: data, as: UTF8.self)
        }
        var configuration: ServerConfiguration
        do { configuration = ServerConfiguration(database: try DatabaseURL(parsing: urlText)) } catch {
            throw ValidationError("\(db == nil ? "--db-file" : "--db"): \(error)")
        }
        do { configuration.listen = try ListenAddress(parsing: listen) } catch {
            throw ValidationError("--listen expects HOST:PORT (like 127.0.0.1:7080), got \"\(listen)\"")
        }
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("--token-file: cannot read the token file \(tokenFile)")
            }
            configuration.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let ttl = DurationText.parse(agentTTL) else {
            throw ValidationError("--agent-ttl expects \(DurationText.accepted), got \"\(agentTTL)\"")
        }
        configuration.agentTTL = ttl
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level expects one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        configuration.logLevel = level
        do { try configuration.validate() } catch { throw ValidationError(error.description) }

        LogFormat.text.bootstrap()
        let failure = Mutex<Error?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached { [configuration] in
            do {
                try await FleetServer.run(configuration, version: CorralCommand.version) { url in
                    try? FileHandle.standardOutput.write(contentsOf: Data("corral server: listening on \(url)\n".utf8))
                }
            } catch {
                failure.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) {
            try? FileHandle.standardError.write(contentsOf: Data("corral server: \(error)\n".utf8))
            throw ExitCode(ExitCodes.corralError)
        }
    }
}
#endif
