import Corral

/// A strict JSON parser (RFC 8259) for the specs corral takes from outside.
///
/// Hand-written because Foundation's `JSONDecoder` does three things a job
/// runner must not: it repairs invalid UTF-8 into U+FFFD (so the command
/// that runs is not the one that was sent), it lets one of two duplicate
/// keys win silently (so a policy proxy and corral can read different
/// specs), and it turns every number into a `Double` (so `1e19` or
/// `4294967296` reach an integer conversion that traps). Here invalid UTF-8,
/// duplicate keys, raw control characters, trailing text and nesting past a
/// bound are errors with the byte offset, and numbers keep their text.
public struct JSONParser {
    /// Arrays and objects nested deeper than this are refused (the parser
    /// recurses; this keeps its stack small whatever the input).
    public static let maximumDepth = 64

    /// Why a document is not accepted, and where.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Offset of the offending byte from the start of the document.
        public let offset: Int
        public let message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    private let bytes: [UInt8]
    private var position = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses one JSON document: a value surrounded by optional whitespace.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result<JSONValue, Failure> {
        let bytes = Array(bytes)
        if let bad = firstInvalidUTF8(bytes) {
            return .failure(Failure(offset: bad, message: "invalid UTF-8"))
        }
        var parser = JSONParser(bytes)
        do throws(Failure) {
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.position == bytes.count else { throw parser.failure("unexpected text after the JSON value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    /// The offset of the first byte that is not well-formed UTF-8, if any.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        if bytes.allSatisfy({ $0 < 0x80 }) { return nil }
        var iterator = bytes.makeIterator()
        var decoder = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch decoder.parseScalar(from: &iterator) {
            case .valid(let encoded): offset += encoded.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    private func failure(_ message: String) -> Failure { Failure(offset: position, message: message) }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard let byte = current else { throw failure("unexpected end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        case 0xEF where bytes[position...].starts(with: [0xEF, 0xBB, 0xBF]):
            throw failure("a byte order mark is not allowed")
        default: throw failure("unexpected \(JSONParser.show(byte)), expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes[position...].starts(with: expected) else { throw failure("unexpected text, expected \(word)") }
        position += expected.count
    }

    private mutating func object(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw failure("nested deeper than \(JSONParser.maximumDepth) levels") }
        position += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw failure("expected a key in double quotes") }
            let keyStart = position
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("expected ':' after a key") }
            position += 1
            skipWhitespace()
            let member = try value(depth: depth)
            if let index = members.index(forKey: key) {
                // Swift compares keys by canonical equivalence: two spellings
                // of one name are one key, and the message says which.
                let held = members.keys[index]
                throw Failure(offset: keyStart, message: held.utf8.elementsEqual(key.utf8) ? "duplicate key \(JSONWriter.quote(key))"
                              : "duplicate key: \(Environment.spelled(key)) and \(Environment.spelled(held)) are one key in Unicode but different bytes")
            }
            members[key] = member
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            case nil: throw failure("unexpected end of input in an object")
            default: throw failure("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw failure("nested deeper than \(JSONParser.maximumDepth) levels") }
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(items)
            case nil: throw failure("unexpected end of input in an array")
            default: throw failure("expected ',' or ']' in an array")
            }
        }
    }

    /// A string; the document is already known to be valid UTF-8.
    private mutating func string() throws(Failure) -> String {
        position += 1
        var decoded: [UInt8] = []
        var runStart = position
        while true {
            guard let byte = current else { throw failure("unexpected end of input in a string") }
            switch byte {
            case UInt8(ascii: "\""):
                decoded.append(contentsOf: bytes[runStart..<position])
                position += 1
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                decoded.append(contentsOf: bytes[runStart..<position])
                let scalar = try escape()
                Unicode.UTF8.encode(scalar) { decoded.append($0) }
                runStart = position
            case 0..<0x20:
                throw failure("raw control character \(JSONParser.show(byte)) in a string (escape it)")
            default:
                position += 1
            }
        }
    }

    /// The escape at `position` (a backslash); leaves `position` after it.
    private mutating func escape() throws(Failure) -> Unicode.Scalar {
        position += 1
        guard let letter = current else { throw failure("unexpected end of input in an escape") }
        position += 1
        switch letter {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let high = try hexQuad()
            if (0xD800..<0xDC00).contains(high) {
                guard bytes[position...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
                    throw failure("a \\u escape of a high surrogate must be followed by a low one")
                }
                position += 2
                let low = try hexQuad()
                guard (0xDC00..<0xE000).contains(low) else { throw failure("invalid low surrogate in a \\u escape") }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
            }
            guard let scalar = Unicode.Scalar(high) else { throw failure("lone low surrogate in a \\u escape") }
            return scalar
        default:
            position -= 1
            throw failure("invalid escape \\\(JSONParser.show(letter))")
        }
    }

    private mutating func hexQuad() throws(Failure) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current, let digit = JSONParser.hexValue(byte) else {
                throw failure("expected four hex digits in a \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as written.
    private mutating func number() throws(Failure) -> JSONNumber {
        let start = position
        func digits(_ parser: inout JSONParser) -> Int {
            let from = parser.position
            while let byte = parser.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { parser.position += 1 }
            return parser.position - from
        }
        if current == UInt8(ascii: "-") { position += 1 }
        let leading = current
        let whole = digits(&self)
        guard whole > 0 else { throw failure("expected a digit in a number") }
        if leading == UInt8(ascii: "0"), whole > 1 { throw Failure(offset: start, message: "a number cannot have a leading zero") }
        if current == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw failure("expected a digit after the decimal point") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw failure("expected a digit in the exponent") }
        }
        return JSONNumber(text: String(decoding: bytes[start..<position], as: UTF8.self))
    }

    private static func show(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        let hex = String(byte, radix: 16, uppercase: true)
        return "byte 0x" + (hex.count == 1 ? "0" : "") + hex
    }
}

/// A JSON number as it was written, read exactly when asked for an integer.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number's text, valid JSON number syntax.
    public let text: String

    public init(text: String) { self.text = text }

    public init(_ value: Int) { text = String(value) }

    public var description: String { text }

    /// The nearest `Double` (infinite for values past its range).
    public var double: Double { Double(text) ?? .nan }

    /// The value when it is a whole number that fits `Int64` (`3`, `3.0`,
    /// `3e2`); nil for fractions and for whole numbers out of range.
    public var integer: Int64? {
        let utf8 = Array(text.utf8)
        var index = 0
        let negative = utf8.first == UInt8(ascii: "-")
        if negative { index += 1 }
        var digits: [UInt8] = []
        var fractionDigits = 0
        var inFraction = false
        while index < utf8.count, utf8[index] != UInt8(ascii: "e"), utf8[index] != UInt8(ascii: "E") {
            if utf8[index] == UInt8(ascii: ".") { inFraction = true } else {
                digits.append(utf8[index] - UInt8(ascii: "0"))
                if inFraction { fractionDigits += 1 }
            }
            index += 1
        }
        var exponent = 0
        if index < utf8.count {
            index += 1
            var exponentNegative = false
            if utf8[index] == UInt8(ascii: "-") || utf8[index] == UInt8(ascii: "+") {
                exponentNegative = utf8[index] == UInt8(ascii: "-")
                index += 1
            }
            while index < utf8.count {
                // Past a million the answer is out of range (or a fraction) anyway.
                exponent = min(exponent * 10 + Int(utf8[index] - UInt8(ascii: "0")), 1_000_000)
                index += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        while digits.first == 0 { digits.removeFirst() }
        var scale = exponent - fractionDigits
        while scale < 0, digits.last == 0 { digits.removeLast(); scale += 1 }
        if digits.isEmpty { return 0 }
        guard scale >= 0, digits.count + scale <= 19 else { return nil }
        var magnitude: UInt64 = 0
        for digit in digits + Array(repeating: 0, count: scale) {
            let (times, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
            guard !overflow, !overflow2 else { return nil }
            magnitude = sum
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }
}
