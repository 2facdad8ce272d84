import CorralFormat

/// The spec field a JSON-level failure is in. The parser reports invalid
/// UTF-8 and duplicate keys by byte offset; the API answers with the
/// field, as for every other spec error (`{"argv": ["\xff"]}` is an
/// `argv` error, `{"env": {"A": "1", "A": "2"}}` an `env` one).
enum SpecErrorField {
    /// The top-level key whose member holds byte `offset`, if any.
    static func field(in bytes: [UInt8], at offset: Int) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var depth = 0, index = 0, inString = false, stringStart = 0
        var lastString: Range<Int>?
        var key: String?
        let end = min(offset, bytes.count)
        while index < end {
            let byte = bytes[index]
            if inString {
                if byte == backslash { index += 2; continue }
                if byte == quote {
                    inString = false
                    if depth == 1 { lastString = stringStart..<index }
                }
                index += 1
                continue
            }
            switch byte {
            case quote: inString = true; stringStart = index + 1
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ":"): if depth == 1, let range = lastString { key = text(bytes[range]) }
            case UInt8(ascii: ","): if depth == 1 { key = nil }
            default: break
            }
            index += 1
        }
        // A top-level key itself (a duplicate): that key.
        if !inString, depth == 1, offset < bytes.count, bytes[offset] == quote,
           let close = bytes[(offset + 1)...].firstIndex(of: quote) {
            return text(bytes[(offset + 1)..<close])
        }
        if inString, depth == 1, key == nil {
            return nil  // inside a key that is not valid text
        }
        return key
    }

    private static func text(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// The spec error for a body the parser refused, with its field when
    /// the failure lies inside one.
    static func error(for bytes: [UInt8], _ specError: SpecError) -> (field: String?, message: String) {
        guard specError.field == nil, case .failure(let failure) = JSONParser.parse(bytes),
              let field = field(in: bytes, at: failure.offset) else {
            return (specError.field, specError.message)
        }
        return (field, failure.message + " at byte \(failure.offset)")
    }
}
