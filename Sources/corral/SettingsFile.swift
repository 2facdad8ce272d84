#if canImport(CorralAgent)
import ArgumentParser
import CorralFormat
import Foundation
import TOMLKit

/// A service's settings from a TOML file and its flags, flags first:
/// each key is a flag's long name (`max-jobs = 64` is `--max-jobs 64`).
/// Every problem is an error naming the key and where it came from, never
/// a value silently dropped: an unknown key, a value of the wrong type, a
/// value out of range.
struct Settings {
    /// What a setting holds.
    enum Value: Equatable {
        case text(String)
        case integer(Int)
        case list([String])
    }

    enum Kind {
        case text
        case integer(ClosedRange<Int>)
        case list
    }

    struct Definition {
        let key: String
        let kind: Kind
        /// nil: unset unless given (`token-file`).
        let defaultValue: Value?
    }

    /// Where an effective value came from.
    enum Origin: Equatable {
        case flag
        case file
        case defaulted
    }

    let definitions: [Definition]
    let filePath: String?
    private var values: [String: (value: Value, origin: Origin)] = [:]

    /// Reads the file (if any), checks every key in it, then lays the
    /// flags over it. `flags` holds only the flags given.
    init(definitions: [Definition], filePath: String?, flags: [String: Value]) throws {
        self.definitions = definitions
        self.filePath = filePath
        let known = Dictionary(uniqueKeysWithValues: definitions.map { ($0.key, $0) })
        if let filePath {
            guard let data = FileManager.default.contents(atPath: filePath) else {
                throw ValidationError("--config: cannot read \(filePath)")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                throw ValidationError("\(filePath): not UTF-8 text")
            }
            let table: TOMLTable
            do {
                table = try TOMLTable(string: text)
            } catch let error as TOMLParseError {
                throw ValidationError("\(filePath): line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
            }
            for key in table.keys.sorted() {
                guard let definition = known[key] else {
                    let keys = definitions.map(\.key).joined(separator: ", ")
                    throw ValidationError("\(filePath): unknown key \"\(key)\"; the keys are \(keys)")
                }
                guard let raw = table[key] else { continue }
                values[key] = (try Settings.value(raw, for: definition, in: filePath), .file)
            }
        }
        for (key, value) in flags {
            values[key] = (value, .flag)
        }
        for definition in definitions {
            if case .integer(let range) = definition.kind, let entry = values[definition.key],
               case .integer(let number) = entry.value, !range.contains(number) {
                throw ValidationError("\(place(definition.key)): must be from \(range.lowerBound) to \(range.upperBound), got \(number)")
            }
        }
    }

    private static func value(_ raw: TOMLValueConvertible, for definition: Definition, in path: String) throws -> Value {
        let place = "\(path): \(definition.key)"
        switch definition.kind {
        case .text:
            if let text = raw.string { return .text(text) }
            // A size or a duration may be a bare number (bytes, seconds).
            if raw.type == .int, let number = raw.int { return .text(String(number)) }
            throw ValidationError("\(place): expected a string, got \(describe(raw))")
        case .integer:
            guard raw.type == .int, let number = raw.int else {
                throw ValidationError("\(place): expected an integer, got \(describe(raw))")
            }
            return .integer(number)
        case .list:
            if let text = raw.string { return .list([text]) }
            guard let array = raw.array else {
                throw ValidationError("\(place): expected a list of strings, got \(describe(raw))")
            }
            var items: [String] = []
            for item in array {
                guard let text = item.string else {
                    throw ValidationError("\(place): expected a list of strings, got an item that is \(describe(item))")
                }
                items.append(text)
            }
            return .list(items)
        }
    }

    private static func describe(_ raw: TOMLValueConvertible) -> String {
        switch raw.type {
        case .int: return "an integer"
        case .double: return "a number with a fraction"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .array: return "a list"
        case .table: return "a table"
        default: return "a date or time"
        }
    }

    /// How an error names the setting: the flag, or the file and key.
    func place(_ key: String) -> String {
        switch values[key]?.origin {
        case .file?: return "\(filePath ?? "config"): \(key)"
        default: return "--\(key)"
        }
    }

    /// A duration setting, in `minimum...maximum` (`range` says so in
    /// words); an error names the flag or the file and key.
    func duration(_ key: String, atLeast minimum: Duration = .zero, atMost maximum: Duration? = nil,
                  _ range: String = "") throws -> Duration {
        let given = text(key) ?? ""
        guard let value = DurationText.parse(given) else {
            throw ValidationError("\(place(key)) expects \(DurationText.accepted), got \"\(given)\"")
        }
        guard value >= minimum, value <= (maximum ?? value) else {
            throw ValidationError("\(place(key)) must be \(range), got \"\(given)\"")
        }
        return value
    }

    func origin(_ key: String) -> Origin { values[key]?.origin ?? .defaulted }

    /// The effective value: the flag, the file's, or the default.
    func value(_ key: String) -> Value? {
        values[key]?.value ?? definitions.first { $0.key == key }?.defaultValue
    }

    func text(_ key: String) -> String? {
        if case .text(let text)? = value(key) { return text }
        return nil
    }

    func integer(_ key: String) -> Int {
        if case .integer(let number)? = value(key) { return number }
        preconditionFailure("\(key) is not an integer setting with a default")
    }

    func list(_ key: String) -> [String] {
        if case .list(let items)? = value(key) { return items }
        return []
    }

    /// The effective configuration as a TOML file `--config` reads back,
    /// each line saying where its value came from.
    func rendered(title: String) -> String {
        var lines = ["# \(title)", "# flags over \(filePath ?? "(no --config file)") over the defaults"]
        for definition in definitions {
            let from: String
            switch origin(definition.key) {
            case .flag: from = "from --\(definition.key)"
            case .file: from = "from the file"
            case .defaulted: from = "default"
            }
            guard let value = value(definition.key) else {
                lines.append("# \(definition.key) = (not set)")
                continue
            }
            let text: String
            switch value {
            case .text(let string): text = Settings.quote(string)
            case .integer(let number): text = String(number)
            case .list(let items): text = "[" + items.map(Settings.quote).joined(separator: ", ") + "]"
            }
            lines.append("\(definition.key) = \(text)  # \(from)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A TOML basic string.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u" + String(format: "%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
#endif
