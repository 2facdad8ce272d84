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
            LoggingSystem.bootstrap { label in TextLogHandler(label: label) }
        }
    }
}

/// swift-log's `StreamLogHandler`, with the control characters of messages
/// and metadata values escaped (`\n`, `\u{1B}`): values come from clients
/// (a job's command, working directory, id), and a raw newline in one let
/// a client write a line of its own into the log, at any level it liked.
struct TextLogHandler: LogHandler {
    private var wrapped: StreamLogHandler

    init(label: String) { wrapped = .standardError(label: label) }

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue.mapValues(TextLogHandler.escaped) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue.map(TextLogHandler.escaped) }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: TextLogHandler.escape(event.message.description))
        event.metadata = event.metadata?.mapValues(TextLogHandler.escaped)
        wrapped.log(event: event)
    }

    static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): return .string(escape(text))
        case .stringConvertible(let item):
            let text = item.description
            return text.unicodeScalars.contains(where: isControl) ? .string(escape(text)) : value
        case .dictionary(let entries): return .dictionary(entries.mapValues(escaped))
        case .array(let items): return .array(items.map(escaped))
        }
    }

    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar): out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// C0, DEL, C1, and the Unicode line and paragraph separators.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
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
