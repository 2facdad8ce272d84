#if canImport(CorralAgent)
import ArgumentParser
import Corral
import CorralAgent
import CorralFleet
import CorralFormat
import Dispatch
import Foundation
import Logging
import Synchronization

/// `corral agent`: the job agent service (HTTP API, web page, SQLite journal).
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the job agent: an HTTP API and a live web page over a crash-safe journal.",
        discussion: """
            Jobs are submitted as JSON (the spec of `corral batch`) to POST /v1/jobs and run on
            Corral's loop; state, output and results are journaled in DATA-DIR/journal.sqlite.
            After a crash, the next start stops whatever the unfinished jobs left running and
            records them as `lost`, with the output they had written. See docs/agent.md.

            Examples:
              corral agent
              corral agent --listen 0.0.0.0:7070 --token-file /etc/corral/token --max-jobs 256
              corral agent drain --data-dir /var/lib/corral   # finish the jobs, exit (for an upgrade)
              corral agent --server-db-file /etc/corral/db-url --name web1 --label role=web   # join a fleet (docs/fleet.md)
              curl -H 'Content-Type: application/json' -d '{"shell":"echo hi","timeout":"10s"}' \\
                   http://127.0.0.1:7070/v1/jobs
            """)

    @Argument(help: ArgumentHelp("`drain`: make the agent running on --data-dir stop taking jobs, finish the ones it has (within its --drain-timeout) and exit; waits for that.", valueName: "action"))
    var action: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("A TOML file of settings, each key a flag's name (`max-jobs = 256`); flags given override it.", valueName: "file"))
    var config: String?
    @Flag(name: .customLong("print-config"), help: "Print the effective configuration (as a file --config reads) and exit.")
    var printConfig = false
    @Option(parsing: .unconditional, help: ArgumentHelp("Address to listen on; port 0 picks one (default 127.0.0.1:7070).", valueName: "host:port"))
    var listen: String?
    @Option(name: .customLong("data-dir"), parsing: .unconditional, help: ArgumentHelp("Where the journal lives (default ./corral-data).", valueName: "dir"))
    var dataDirectory: String?
    @Option(name: .customLong("token-file"), parsing: .unconditional, help: ArgumentHelp("File holding the bearer token clients must send; required off loopback.", valueName: "file"))
    var tokenFile: String?
    @Option(name: .customLong("max-jobs"), parsing: .unconditional, help: ArgumentHelp("Jobs running at once, 1 to 100000 (default 64).", valueName: "n"))
    var maxJobs: Int?
    @Option(name: .customLong("max-queued"), parsing: .unconditional, help: ArgumentHelp("Jobs waiting at most, 0 to 10000000; more are answered 429 (default 10000).", valueName: "n"))
    var maxQueued: Int?
    @Option(name: .customLong("max-output"), parsing: .unconditional, help: ArgumentHelp("Output kept per stream and job, at most (default 1MiB).", valueName: "size"))
    var maxOutput: String?
    @Option(name: .customLong("default-timeout"), parsing: .unconditional, help: ArgumentHelp("Deadline for specs without one; 0 for none (default 1h).", valueName: "duration"))
    var defaultTimeout: String?
    @Option(name: .customLong("max-body"), parsing: .unconditional, help: ArgumentHelp("Largest request body (default 1MiB).", valueName: "size"))
    var maxBody: String?
    @Option(name: .customLong("keep-jobs"), parsing: .unconditional, help: ArgumentHelp("Finished jobs kept, 1 to 100000000 (default 10000).", valueName: "n"))
    var keepJobs: Int?
    @Option(name: .customLong("keep-for"), parsing: .unconditional, help: ArgumentHelp("Finished jobs kept at most this long (default 7d).", valueName: "duration"))
    var keepFor: String?
    @Option(name: .customLong("allow-user"), parsing: .unconditionalSingleValue, help: ArgumentHelp("A user specs may run as (repeatable; the agent must run as root).", valueName: "name"))
    var allowUsers: [String] = []
    @Option(name: .customLong("allow-group"), parsing: .unconditionalSingleValue, help: ArgumentHelp("A group specs may name besides their user's primary group (repeatable).", valueName: "name"))
    var allowGroups: [String] = []
    @Option(name: .customLong("shutdown-grace"), parsing: .unconditional, help: ArgumentHelp("On SIGTERM/SIGINT, time running jobs get to finish (default 10s).", valueName: "duration"))
    var shutdownGrace: String?
    @Option(name: .customLong("drain-timeout"), parsing: .unconditional, help: ArgumentHelp("On a drain (SIGUSR1, `corral agent drain`), time running and queued jobs get to finish (default 1h).", valueName: "duration"))
    var drainTimeout: String?
    @Option(name: .customLong("flush-interval"), parsing: .unconditional, help: ArgumentHelp("How often output is journaled, 1ms to 1m (default 100ms).", valueName: "duration"))
    var flushInterval: String?
    @Option(name: .customLong("keep-alive"), parsing: .unconditional, help: ArgumentHelp("Keep-alive comment interval on event streams (default 15s).", valueName: "duration"))
    var keepAlive: String?
    @Option(name: .customLong("max-connections"), parsing: .unconditional, help: ArgumentHelp("Connections at once, 1 to 1000000; over it the longest-idle one is closed (default 1024, at most half the descriptor limit).", valueName: "n"))
    var maxConnections: Int?
    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: ArgumentHelp("Close a connection idle this long (default 60s).", valueName: "duration"))
    var idleTimeout: String?
    @Option(name: .customLong("write-timeout"), parsing: .unconditional, help: ArgumentHelp("Close an event stream whose client has not taken a write for this long (default 10s).", valueName: "duration"))
    var writeTimeout: String?
    @Option(name: .customLong("log-format"), parsing: .unconditional, help: ArgumentHelp("Log lines on stderr as text or json, one object per line (default text).", valueName: "format"))
    var logFormat: String?
    @Option(name: .customLong("log-level"), parsing: .unconditional, help: ArgumentHelp("trace, debug (a line per request and submit), info, notice, warning, error or critical (default info).", valueName: "level"))
    var logLevel: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("Containment: auto (cgroup v2 when available) or process-group (default auto).", valueName: "tier"))
    var containment: String?
    @Option(name: .customLong("server-db"), parsing: .unconditional, help: ArgumentHelp("Join a fleet: take tasks from the PostgreSQL database of `corral server` (postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require]). Prefer --server-db-file for a URL with a password.", valueName: "url"))
    var serverDB: String?
    @Option(name: .customLong("server-db-file"), parsing: .unconditional, help: ArgumentHelp("A file holding the --server-db URL (keeps the password out of the process list).", valueName: "file"))
    var serverDBFile: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("This agent's name in the fleet (default: the host name).", valueName: "name"))
    var name: String?
    @Option(parsing: .unconditionalSingleValue, help: ArgumentHelp("A label runs can target, key=value (repeatable).", valueName: "key=value"))
    var label: [String] = []
    @Option(name: .customLong("fleet-poll"), parsing: .unconditional, help: ArgumentHelp("How often the fleet database is polled while tasks run (default 1s); idle, it backs off to --fleet-idle-poll.", valueName: "duration"))
    var fleetPoll: String?
    @Option(name: .customLong("fleet-idle-poll"), parsing: .unconditional, help: ArgumentHelp("The longest poll interval when idle (default 5s).", valueName: "duration"))
    var fleetIdlePoll: String?
    @Option(name: .customLong("fleet-reconnect"), parsing: .unconditional, help: ArgumentHelp("While the fleet database fails, start a fresh connection pool this often, so the agent is back within about a quarter of it once the database is (default 20s, 1s to 5m).", valueName: "duration"))
    var fleetReconnect: String?
    @Option(name: .customLong("fleet-output-cap"), parsing: .unconditional, help: ArgumentHelp("Output a fleet task ships to the database at most, 0 for none; the result still holds the tail (default 1MiB).", valueName: "size"))
    var fleetOutputCap: String?

    /// Every setting, in the order --print-config shows them; the key is
    /// the flag's long name and the key in the --config file.
    static let settings: [Settings.Definition] = [
        .init(key: "listen", kind: .text, defaultValue: .text("127.0.0.1:7070")),
        .init(key: "data-dir", kind: .text, defaultValue: .text("./corral-data")),
        .init(key: "token-file", kind: .text, defaultValue: nil),
        .init(key: "max-jobs", kind: .integer(1...100_000), defaultValue: .integer(64)),
        .init(key: "max-queued", kind: .integer(0...10_000_000), defaultValue: .integer(10_000)),
        .init(key: "max-output", kind: .text, defaultValue: .text("1MiB")),
        .init(key: "default-timeout", kind: .text, defaultValue: .text("1h")),
        .init(key: "max-body", kind: .text, defaultValue: .text("1MiB")),
        .init(key: "keep-jobs", kind: .integer(1...100_000_000), defaultValue: .integer(10_000)),
        .init(key: "keep-for", kind: .text, defaultValue: .text("7d")),
        .init(key: "allow-user", kind: .list, defaultValue: .list([])),
        .init(key: "allow-group", kind: .list, defaultValue: .list([])),
        .init(key: "shutdown-grace", kind: .text, defaultValue: .text("10s")),
        .init(key: "drain-timeout", kind: .text, defaultValue: .text("1h")),
        .init(key: "flush-interval", kind: .text, defaultValue: .text("100ms")),
        .init(key: "keep-alive", kind: .text, defaultValue: .text("15s")),
        .init(key: "max-connections", kind: .integer(1...1_000_000), defaultValue: .integer(1024)),
        .init(key: "idle-timeout", kind: .text, defaultValue: .text("60s")),
        .init(key: "write-timeout", kind: .text, defaultValue: .text("10s")),
        .init(key: "containment", kind: .text, defaultValue: .text("auto")),
        .init(key: "log-format", kind: .text, defaultValue: .text("text")),
        .init(key: "log-level", kind: .text, defaultValue: .text("info")),
        .init(key: "server-db", kind: .text, defaultValue: nil),
        .init(key: "server-db-file", kind: .text, defaultValue: nil),
        .init(key: "name", kind: .text, defaultValue: nil),
        .init(key: "label", kind: .list, defaultValue: .list([])),
        .init(key: "fleet-poll", kind: .text, defaultValue: .text("1s")),
        .init(key: "fleet-idle-poll", kind: .text, defaultValue: .text("5s")),
        .init(key: "fleet-reconnect", kind: .text, defaultValue: .text("20s")),
        .init(key: "fleet-output-cap", kind: .text, defaultValue: .text("1MiB")),
    ]

    /// The flags given, by key.
    private var flags: [String: Settings.Value] {
        var given: [String: Settings.Value] = [:]
        let texts: [(String, String?)] = [
            ("listen", listen), ("data-dir", dataDirectory), ("token-file", tokenFile), ("max-output", maxOutput),
            ("default-timeout", defaultTimeout), ("max-body", maxBody), ("keep-for", keepFor),
            ("shutdown-grace", shutdownGrace), ("drain-timeout", drainTimeout), ("flush-interval", flushInterval),
            ("keep-alive", keepAlive), ("idle-timeout", idleTimeout), ("write-timeout", writeTimeout),
            ("containment", containment), ("log-format", logFormat), ("log-level", logLevel),
            ("server-db", serverDB), ("server-db-file", serverDBFile), ("name", name), ("fleet-poll", fleetPoll),
            ("fleet-idle-poll", fleetIdlePoll), ("fleet-reconnect", fleetReconnect), ("fleet-output-cap", fleetOutputCap),
        ]
        for case let (key, text?) in texts { given[key] = .text(text) }
        let integers: [(String, Int?)] = [
            ("max-jobs", maxJobs), ("max-queued", maxQueued), ("keep-jobs", keepJobs), ("max-connections", maxConnections),
        ]
        for case let (key, number?) in integers { given[key] = .integer(number) }
        if !allowUsers.isEmpty { given["allow-user"] = .list(allowUsers) }
        if !allowGroups.isEmpty { given["allow-group"] = .list(allowGroups) }
        if !label.isEmpty { given["label"] = .list(label) }
        return given
    }

    func run() throws {
        let settings = try Settings(definitions: AgentCommand.settings, filePath: config, flags: flags)
        if let action {
            guard action == "drain" else { throw ValidationError("unknown action \"\(action)\"; the one action is `drain`") }
            try AgentDrain(dataDirectory: settings.text("data-dir") ?? "./corral-data").run()
            return
        }
        let configuration = try AgentCommand.configuration(from: settings)
        let fleet = try AgentCommand.fleet(from: settings)
        guard let format = LogFormat.parse(settings.text("log-format") ?? "") else {
            throw ValidationError("\(settings.place("log-format")) expects text or json, got \"\(settings.text("log-format") ?? "")\"")
        }
        if printConfig {
            print(settings.rendered(title: "corral agent: effective configuration"), terminator: "")
            return
        }
        StandardDescriptors.reserve()
        format.bootstrap()

        let failure = Mutex<Error?>(nil)
        let done = DispatchSemaphore(value: 0)
        let tokenNote = configuration.token == nil ? "" : " (the page needs ?token=<token> once; the API, 'Authorization: Bearer <token>')"
        Task.detached {
            do {
                try await Agent.run(configuration, version: CorralCommand.version,
                                    companion: fleet?.companion(version: CorralCommand.version)) { url in
                    // Not fatal when stdout is gone (a closed pipe): the agent serves on.
                    try? FileHandle.standardOutput.write(contentsOf: Data("corral agent: listening on \(url)\(tokenNote)\n".utf8))
                }
            } catch {
                failure.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) {
            try? FileHandle.standardError.write(contentsOf: Data("corral agent: \(error)\n".utf8))
            throw ExitCode(ExitCodes.corralError)
        }
    }

    /// Fleet mode's settings, or nil without --server-db(-file).
    static func fleet(from settings: Settings) throws -> FleetAgentConfiguration? {
        let urlText: String
        switch (settings.text("server-db"), settings.text("server-db-file")) {
        case (nil, nil):
            guard settings.text("name") == nil, settings.list("label").isEmpty else {
                throw ValidationError("--name and --label are for fleet mode: give --server-db or --server-db-file")
            }
            // The fleet's tuning is checked all the same (a config file may
            // set it for a later fleet mode): out of range is out of range.
            var unused = FleetAgentConfiguration(database: try DatabaseURL(parsing: "postgres://check@localhost/check"), name: "check")
            try tune(&unused, from: settings)
            return nil
        case (_?, _?): throw ValidationError("give --server-db or --server-db-file, not both")
        case (let url?, nil): urlText = url
        case (nil, let file?):
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("\(settings.place("server-db-file")): cannot read \(file)")
            }
            urlText = String(decoding: data, as: UTF8.self)
        }
        let database: DatabaseURL
        do { database = try DatabaseURL(parsing: urlText) } catch {
            throw ValidationError("\(settings.place(settings.text("server-db") == nil ? "server-db-file" : "server-db")): \(error)")
        }
        var name = settings.text("name") ?? ""
        if name.isEmpty {
            var buffer = [CChar](repeating: 0, count: 256)
            if gethostname(&buffer, buffer.count - 1) == 0 {
                name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        var fleet = FleetAgentConfiguration(database: database, name: name)
        for text in settings.list("label") {
            guard let (key, value) = Labels.parse(text) else {
                throw ValidationError("\(settings.place("label")): expects key=value with \(Labels.rule), got \"\(text)\"")
            }
            fleet.labels[key] = value
        }
        try tune(&fleet, from: settings)
        return fleet
    }

    /// The fleet settings that are not the database or the agent's name:
    /// polls, reconnection, output cap, checked against their ranges.
    private static func tune(_ fleet: inout FleetAgentConfiguration, from settings: Settings) throws {
        fleet.busyPoll = try settings.duration("fleet-poll")
        fleet.idlePoll = try settings.duration("fleet-idle-poll")
        let reconnect = FleetAgentConfiguration.reconnectRange
        fleet.reconnect = try settings.duration("fleet-reconnect", atLeast: reconnect.lowerBound, atMost: reconnect.upperBound,
                                                "from 1s to 5m")
        let cap = settings.text("fleet-output-cap") ?? ""
        guard let capBytes = SizeText.parse(cap) else {
            throw ValidationError("\(settings.place("fleet-output-cap")) expects \(SizeText.accepted), got \"\(cap)\"")
        }
        fleet.outputCap = capBytes
        do { try fleet.validate() } catch { throw ValidationError(error.description) }
    }

    /// The agent's configuration from the effective settings; a value
    /// that does not parse or is out of range names its flag or key.
    static func configuration(from settings: Settings) throws -> AgentConfiguration {
        func text(_ key: String) -> String { settings.text(key) ?? "" }
        func size(_ key: String) throws -> Int {
            guard let value = SizeText.parse(text(key)), value > 0 else {
                throw ValidationError("\(settings.place(key)) expects a size like 65536, 64KiB, 1MiB or 10MB, more than 0 and at most 1TiB, got \"\(text(key))\"")
            }
            return value
        }
        var configuration = AgentConfiguration()
        do {
            configuration.listen = try ListenAddress(parsing: text("listen"))
        } catch {
            throw ValidationError("\(settings.place("listen")) expects HOST:PORT (like 127.0.0.1:7070), got \"\(text("listen"))\"")
        }
        configuration.dataDirectory = text("data-dir")
        if let tokenFile = settings.text("token-file") {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("\(settings.place("token-file")): cannot read the token file \(tokenFile)")
            }
            configuration.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        configuration.maxJobs = settings.integer("max-jobs")
        configuration.maxQueued = settings.integer("max-queued")
        configuration.maxOutputBytes = try size("max-output")
        configuration.maxBodyBytes = try size("max-body")
        let timeout = try settings.duration("default-timeout")
        configuration.defaultTimeout = timeout == .zero ? nil : timeout
        configuration.keepJobs = settings.integer("keep-jobs")
        configuration.keepFor = try settings.duration("keep-for", atLeast: .seconds(1), "1s or more")
        configuration.allowedUsers = Set(settings.list("allow-user"))
        configuration.allowedGroups = Set(settings.list("allow-group"))
        configuration.shutdownGrace = try settings.duration("shutdown-grace")
        configuration.drainTimeout = try settings.duration("drain-timeout")
        configuration.flushInterval = try settings.duration("flush-interval", atLeast: .milliseconds(1), atMost: .seconds(60), "from 1ms to 1m")
        configuration.keepAliveInterval = try settings.duration("keep-alive", atLeast: .milliseconds(1), "more than 0")
        configuration.maxConnections = settings.integer("max-connections")
        configuration.idleTimeout = try settings.duration("idle-timeout", atLeast: .milliseconds(1), "more than 0")
        configuration.writeTimeout = try settings.duration("write-timeout", atLeast: .milliseconds(1), "more than 0")
        switch text("containment") {
        case "auto": configuration.containment = .automatic
        case "process-group": configuration.containment = .processGroup
        default: throw ValidationError("\(settings.place("containment")) expects auto or process-group, got \"\(text("containment"))\"")
        }
        guard let level = Logger.Level(rawValue: text("log-level")) else {
            throw ValidationError("\(settings.place("log-level")) expects one of "
                + Logger.Level.allCases.map(\.rawValue).joined(separator: ", ") + ", got \"\(text("log-level"))\"")
        }
        configuration.logLevel = level
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.description)
        }
        return configuration
    }
}
#endif
