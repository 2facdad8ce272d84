#if canImport(CorralAgent)
import ArgumentParser
import Corral
import CorralAgent
import CorralFormat
import Dispatch
import Foundation
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
              curl -H 'Content-Type: application/json' -d '{"shell":"echo hi","timeout":"10s"}' \\
                   http://127.0.0.1:7070/v1/jobs
            """)

    @Option(help: ArgumentHelp("Address to listen on; port 0 picks one (default 127.0.0.1:7070).", valueName: "host:port"))
    var listen: String = "127.0.0.1:7070"
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Where the journal lives (default ./corral-data).", valueName: "dir"))
    var dataDirectory: String = "./corral-data"
    @Option(name: .customLong("token-file"), help: ArgumentHelp("File holding the bearer token clients must send; required off loopback.", valueName: "file"))
    var tokenFile: String?
    @Option(name: .customLong("max-jobs"), help: ArgumentHelp("Jobs running at once (default 64).", valueName: "n"))
    var maxJobs: Int = 64
    @Option(name: .customLong("max-queued"), help: ArgumentHelp("Jobs waiting at most; more are answered 429 (default 10000).", valueName: "n"))
    var maxQueued: Int = 10_000
    @Option(name: .customLong("max-output"), help: ArgumentHelp("Output kept per stream and job, at most (default 1MiB).", valueName: "size"))
    var maxOutput: String = "1MiB"
    @Option(name: .customLong("default-timeout"), help: ArgumentHelp("Deadline for specs without one; 0 for none (default 1h).", valueName: "duration"))
    var defaultTimeout: String = "1h"
    @Option(name: .customLong("max-body"), help: ArgumentHelp("Largest request body (default 1MiB).", valueName: "size"))
    var maxBody: String = "1MiB"
    @Option(name: .customLong("keep-jobs"), help: ArgumentHelp("Finished jobs kept (default 10000).", valueName: "n"))
    var keepJobs: Int = 10_000
    @Option(name: .customLong("keep-for"), help: ArgumentHelp("Finished jobs kept at most this long (default 7d as 168h).", valueName: "duration"))
    var keepFor: String = "168h"
    @Option(name: .customLong("allow-user"), help: ArgumentHelp("A user specs may run as (repeatable; the agent must run as root).", valueName: "name"))
    var allowUsers: [String] = []
    @Option(name: .customLong("allow-group"), help: ArgumentHelp("A group specs may name besides their user's primary group (repeatable).", valueName: "name"))
    var allowGroups: [String] = []
    @Option(name: .customLong("shutdown-grace"), help: ArgumentHelp("On SIGTERM/SIGINT, time running jobs get to finish (default 10s).", valueName: "duration"))
    var shutdownGrace: String = "10s"
    @Option(name: .customLong("flush-interval"), help: ArgumentHelp("How often output is journaled (default 100ms).", valueName: "duration"))
    var flushInterval: String = "100ms"
    @Option(name: .customLong("keep-alive"), help: ArgumentHelp("Keep-alive comment interval on event streams (default 15s).", valueName: "duration"))
    var keepAlive: String = "15s"
    @Option(name: .customLong("max-connections"), help: ArgumentHelp("Connections at once; over it the longest-idle one is closed (default 1024, at most half the descriptor limit).", valueName: "n"))
    var maxConnections: Int = 1024
    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Close a connection idle this long (default 60s).", valueName: "duration"))
    var idleTimeout: String = "60s"
    @Option(name: .customLong("write-timeout"), help: ArgumentHelp("Close an event stream whose client has not taken a write for this long (default 10s).", valueName: "duration"))
    var writeTimeout: String = "10s"
    @Option(help: ContainmentOption.help)
    var containment: String = "auto"

    func run() throws {
        StandardDescriptors.reserve()
        var configuration = AgentConfiguration()
        do {
            configuration.listen = try ListenAddress(parsing: listen)
        } catch {
            throw ValidationError(error.description)
        }
        configuration.dataDirectory = dataDirectory
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("cannot read the token file \(tokenFile)")
            }
            configuration.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        configuration.maxJobs = maxJobs
        configuration.maxQueued = maxQueued
        configuration.maxOutputBytes = try size("--max-output", maxOutput)
        configuration.maxBodyBytes = try size("--max-body", maxBody)
        let timeout = try duration("--default-timeout", defaultTimeout)
        configuration.defaultTimeout = timeout == .zero ? nil : timeout
        configuration.keepJobs = keepJobs
        configuration.keepFor = try duration("--keep-for", keepFor)
        configuration.allowedUsers = Set(allowUsers)
        configuration.allowedGroups = Set(allowGroups)
        configuration.shutdownGrace = try duration("--shutdown-grace", shutdownGrace)
        configuration.flushInterval = try duration("--flush-interval", flushInterval)
        configuration.keepAliveInterval = try duration("--keep-alive", keepAlive)
        configuration.maxConnections = maxConnections
        configuration.idleTimeout = try duration("--idle-timeout", idleTimeout)
        configuration.writeTimeout = try duration("--write-timeout", writeTimeout)
        configuration.containment = try ContainmentOption.parse(containment)
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.description)
        }

        let failure = Mutex<Error?>(nil)
        let done = DispatchSemaphore(value: 0)
        let tokenNote = configuration.token == nil ? "" : " (the page needs ?token=<token> once; the API, 'Authorization: Bearer <token>')"
        Task.detached {
            do {
                try await Agent.run(configuration, version: CorralCommand.version) { url in
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

    private func size(_ option: String, _ text: String) throws -> Int {
        guard let value = SizeText.parse(text), value > 0 else {
            throw ValidationError("\(option) expects \(SizeText.accepted), got \"\(text)\"")
        }
        return value
    }

    private func duration(_ option: String, _ text: String) throws -> Duration {
        guard let value = DurationText.parse(text) else {
            throw ValidationError("\(option) expects \(DurationText.accepted), got \"\(text)\"")
        }
        return value
    }
}
#endif
