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

    /// `text` as a JSON string literal. Works on the UTF-8 bytes: runs
    /// that need no escape are copied whole, so a MiB of log text costs
    /// about a millisecond (the hot-path benchmark "JSON quote"), not the
    /// tens a walk over Unicode scalars took.
    public static func quote(_ text: String) -> String {
        // Most text (ids, paths, a result's output of plain lines) needs no
        // escape: copied once, as it is (a result's 8 MiB of output is not
        // held twice at its peak).
        let plain = text.utf8.withContiguousStorageIfAvailable { !$0.contains(where: needsEscape) }
            ?? !text.utf8.contains(where: needsEscape)
        if plain { return "\"" + text + "\"" }
        return text.utf8.withContiguousStorageIfAvailable { quote(utf8: $0) } ?? quote(utf8: Array(text.utf8))
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Escapes `"`, `\` and the control characters below 0x20; every other
    /// byte (valid UTF-8 in, since it comes from a `String`) is copied.
    private static func quote<Bytes: RandomAccessCollection>(utf8 bytes: Bytes) -> String
    where Bytes.Element == UInt8, Bytes.Index == Int {
        let first = bytes.firstIndex(where: needsEscape) ?? bytes.endIndex
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16 + 2)
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: bytes[bytes.startIndex..<first])
        var run = first
        for index in first..<bytes.endIndex {
            let byte = bytes[index]
            guard needsEscape(byte) else { continue }
            out.append(contentsOf: bytes[run..<index])
            run = index + 1
            out.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "t"))
            default:
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        out.append(contentsOf: bytes[run..<bytes.endIndex])
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
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
