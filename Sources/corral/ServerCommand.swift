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

    @Option(parsing: .unconditional, help: ArgumentHelp("A TOML file of settings, each key a flag's name (`agent-ttl = \"30s\"`); flags given override it.", valueName: "file"))
    var config: String?
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration (as a file --config reads) and exit.")
    var printConfig = false
    @Option(parsing: .unconditional, help: ArgumentHelp("The PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require]).", valueName: "url"))
    var db: String?
    @Option(name: .customLong("db-file"), parsing: .unconditional, help: ArgumentHelp("A file holding the --db URL (keeps the password out of the process list).", valueName: "file"))
    var dbFile: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Address to listen on; port 0 picks one (default 127.0.0.1:7080).", valueName: "host:port"))
    var listen: String?
    @Option(name: .customLong("token-file"), parsing: .unconditional, help: ArgumentHelp("File holding the bearer token clients must send; required off loopback.", valueName: "file"))
    var tokenFile: String?
    @Option(name: .customLong("agent-ttl"), parsing: .unconditional, help: ArgumentHelp("An agent silent this long is down: its running tasks become lost, its queued ones undelivered; half of it, suspect (default 30s).", valueName: "duration"))
    var agentTTL: String?
    @Option(name: .customLong("keep-days"), parsing: .unconditional, help: ArgumentHelp("Finished runs and their output are kept this many days, 0 to 36500; 0 keeps everything (default 30).", valueName: "n"))
    var keepDays: Int?
    @Option(name: .customLong("max-body"), parsing: .unconditional, help: ArgumentHelp("Largest request body (default 1MiB).", valueName: "size"))
    var maxBody: String?
    @Option(name: .customLong("log-format"), parsing: .unconditional, help: ArgumentHelp("Log lines on stderr as text or json, one object per line (default text).", valueName: "format"))
    var logFormat: String?
    @Option(name: .customLong("log-level"), parsing: .unconditional, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info).", valueName: "level"))
    var logLevel: String?

    /// Every setting, in the order --print-config shows them; the key is
    /// the flag's long name and the key in the --config file.
    static let settings: [Settings.Definition] = [
        .init(key: "db", kind: .text, defaultValue: nil),
        .init(key: "db-file", kind: .text, defaultValue: nil),
        .init(key: "listen", kind: .text, defaultValue: .text("127.0.0.1:7080")),
        .init(key: "token-file", kind: .text, defaultValue: nil),
        .init(key: "agent-ttl", kind: .text, defaultValue: .text("30s")),
        .init(key: "keep-days", kind: .integer(0...36_500), defaultValue: .integer(30)),
        .init(key: "max-body", kind: .text, defaultValue: .text("1MiB")),
        .init(key: "log-format", kind: .text, defaultValue: .text("text")),
        .init(key: "log-level", kind: .text, defaultValue: .text("info")),
    ]

    /// The flags given, by key.
    private var flags: [String: Settings.Value] {
        var given: [String: Settings.Value] = [:]
        let texts: [(String, String?)] = [
            ("db", db), ("db-file", dbFile), ("listen", listen), ("token-file", tokenFile), ("agent-ttl", agentTTL),
            ("max-body", maxBody), ("log-format", logFormat), ("log-level", logLevel),
        ]
        for case let (key, text?) in texts { given[key] = .text(text) }
        if let keepDays { given["keep-days"] = .integer(keepDays) }
        return given
    }

    func run() throws {
        let settings = try Settings(definitions: ServerCommand.settings, filePath: config, flags: flags)
        let configuration = try ServerCommand.configuration(from: settings)
        guard let format = LogFormat.parse(settings.text("log-format") ?? "") else {
            throw ValidationError("\(settings.place("log-format")) expects text or json, got \"\(settings.text("log-format") ?? "")\"")
        }
        if printConfig {
            // A URL's password is not printed (the output goes to terminals and logs).
            let text = settings.rendered(title: "corral server: effective configuration")
            print(text.replacing(#/(postgres(?:ql)?://[^:@/\s"]+):[^@\s"]+@/#) { "\($0.output.1):***@" }, terminator: "")
            return
        }
        format.bootstrap()
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

    /// The server's configuration from the effective settings; a value
    /// out of range is an error naming its key and where it came from.
    static func configuration(from settings: Settings) throws -> ServerConfiguration {
        let urlText: String
        switch (settings.text("db"), settings.text("db-file")) {
        case (nil, nil): throw ValidationError("give the database: --db URL or --db-file FILE (or db / db-file in --config)")
        case (_?, _?): throw ValidationError("give --db or --db-file, not both")
        case (let url?, nil): urlText = url
        case (nil, let file?):
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("\(settings.place("db-file")): cannot read \(file)")
            }
            urlText = String(decoding: data, as: UTF8.self)
        }
        var configuration: ServerConfiguration
        do { configuration = ServerConfiguration(database: try DatabaseURL(parsing: urlText)) } catch {
            throw ValidationError("\(settings.place(settings.text("db") == nil ? "db-file" : "db")): \(error)")
        }
        let listen = settings.text("listen") ?? ""
        do { configuration.listen = try ListenAddress(parsing: listen) } catch {
            throw ValidationError("\(settings.place("listen")) expects HOST:PORT (like 127.0.0.1:7080), got \"\(listen)\"")
        }
        if let tokenFile = settings.text("token-file") {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("\(settings.place("token-file")): cannot read the token file \(tokenFile)")
            }
            configuration.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let ttl = settings.text("agent-ttl") ?? ""
        guard let agentTTL = DurationText.parse(ttl) else {
            throw ValidationError("\(settings.place("agent-ttl")) expects \(DurationText.accepted), got \"\(ttl)\"")
        }
        configuration.agentTTL = agentTTL
        let body = settings.text("max-body") ?? ""
        guard let maxBody = SizeText.parse(body), maxBody >= 1024, maxBody <= 64 << 20 else {
            throw ValidationError("\(settings.place("max-body")) expects a size from 1KiB to 64MiB, got \"\(body)\"")
        }
        configuration.maxBodyBytes = Int(maxBody)
        configuration.keepDays = settings.integer("keep-days")
        let level = settings.text("log-level") ?? ""
        guard let logLevel = Logger.Level(rawValue: level) else {
            throw ValidationError("\(settings.place("log-level")) expects one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        configuration.logLevel = logLevel
        do { try configuration.validate() } catch { throw ValidationError("\(error.description)") }
        return configuration
    }
}
#endif
