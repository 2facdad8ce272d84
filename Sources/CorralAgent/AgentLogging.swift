import CorralFormat
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a service's log lines are written to stderr: swift-log's plain
/// text, or one JSON object per line for a log collector. Chosen once, at
/// start (`--log-format`); shared by every service of the binary.
public struct LogFormat: Hashable, Sendable, CustomStringConvertible {
    let name: String

    /// swift-log's `StreamLogHandler`: `2026-… info corral.agent: job ended id=j1 …`.
    public static let text = LogFormat(name: "text")
    /// `{"time":"…","level":"info","logger":"corral.agent","message":"job ended","job":"j1",…}`;
    /// metadata numbers stay numbers.
    public static let json = LogFormat(name: "json")

    public static func parse(_ text: String) -> LogFormat? {
        [LogFormat.text, .json].first { $0.name == text }
    }

    public var description: String { name }

    /// Installs the format for every logger of the process. Call once,
    /// before any logger is made.
    public func bootstrap() {
        if self == .json {
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        } else {
            LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        }
    }
}

/// One JSON object per line on stderr, each written whole under a lock,
/// so lines of concurrent loggers never interleave. Never called on a
/// runner's loop thread: the agent logs from its request handlers and its
/// journal writer.
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    /// Held for each line's write, so lines never interleave.
    private static let output = Mutex(())

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "{\"time\":\"\(JSONLogHandler.timestamp())\",\"level\":\"\(event.level.rawValue)\",\"logger\":"
        line += JSONLogHandler.quote(label) + ",\"message\":" + JSONLogHandler.quote(event.message.description)
        var all = metadata
        if let more = event.metadata { all.merge(more) { $1 } }
        for key in all.keys.sorted() where !["time", "level", "logger", "message"].contains(key) {
            line += "," + JSONLogHandler.quote(key) + ":" + JSONLogHandler.json(all[key]!)
        }
        line += "}\n"
        // stderr gone: nothing better to do with a log line than drop it.
        JSONLogHandler.output.withLock { _ in try? FileHandle.standardError.write(contentsOf: Data(line.utf8)) }
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return quote(text)
        case .stringConvertible(let item):
            // Numbers stay numbers (a finite Double, any integer).
            if let number = item as? Double { return number.isFinite ? "\(number)" : quote("\(number)") }
            if item is Int || item is Int32 || item is Int64 || item is UInt64 || item is UInt32 { return "\(item)" }
            if let flag = item as? Bool { return flag ? "true" : "false" }
            return quote(item.description)
        case .dictionary(let entries):
            return "{" + entries.keys.sorted().map { quote($0) + ":" + json(entries[$0]!) }.joined(separator: ",") + "}"
        case .array(let items):
            return "[" + items.map(json).joined(separator: ",") + "]"
        }
    }

    static func quote(_ text: String) -> String { JSONWriter.quote(text) }

    /// UTC, milliseconds: `2026-12-01T21:50:59.123Z`.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { String(value).leftPadded(to: 2) }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):"
            + "\(two(parts.tm_min)):\(two(parts.tm_sec)).\(String(now.tv_nsec / 1_000_000).leftPadded(to: 3))Z"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
