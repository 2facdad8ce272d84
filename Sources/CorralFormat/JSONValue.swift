/// A JSON value as `JSONParser` reads it: booleans apart from numbers,
/// numbers as written.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// Writes JSON text: strings escaped, keys in the order given.
public struct JSONWriter {
    private var fields: [String] = []

    public init() {}

    public static func quote(_ text: String) -> String {
        // Most strings (ids, names, paths, times) need no escape: copy them whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + text + "\""
        }
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    public mutating func add(_ key: String, _ text: String?) { addRaw(key, text.map(JSONWriter.quote) ?? "null") }
    public mutating func add(_ key: String, _ number: Int?) { addRaw(key, number.map(String.init) ?? "null") }
    public mutating func add(_ key: String, _ number: Int32?) { addRaw(key, number.map(String.init) ?? "null") }
    public mutating func add(_ key: String, _ flag: Bool) { addRaw(key, flag ? "true" : "false") }
    public mutating func add(_ key: String, _ number: Double) { addRaw(key, number.isFinite ? String(number) : "null") }
    public mutating func addRaw(_ key: String, _ json: String) { fields.append(JSONWriter.quote(key) + ":" + json) }

    public var text: String { "{" + fields.joined(separator: ",") + "}" }
}

extension JSONValue {
    /// The value as compact JSON text (object keys sorted), which
    /// `JSONParser` reads back to an equal value.
    public var jsonText: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return number.text
        case .string(let text): return JSONWriter.quote(text)
        case .array(let items): return "[" + items.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }
                .map { JSONWriter.quote($0.key) + ":" + $0.value.jsonText }.joined(separator: ",") + "}"
        }
    }
}
