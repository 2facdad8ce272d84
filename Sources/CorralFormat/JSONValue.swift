/// A JSON value as decoded, keeping booleans apart from numbers.
public enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

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
