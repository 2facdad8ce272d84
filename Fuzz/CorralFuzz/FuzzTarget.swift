import Corral
import CorralFormat

/// libFuzzer's entry point: every reader of outside input, fed the same
/// bytes. A trap, an overflow or a broken invariant is a crash libFuzzer
/// reports with the input that caused it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))

    // The parser: what it accepts, written back out, parses to an equal value.
    if case .success(let value) = JSONParser.parse(bytes) {
        guard case .success(let again) = JSONParser.parse(Array(value.jsonText.utf8)), again == value else {
            fatalError("round trip changed \(value.jsonText)")
        }
    }

    // The spec decoder: a spec or an error; an accepted spec is valid.
    switch JobSpecJSON.decode(bytes: bytes, defaultID: "fuzz") {
    case .success(let decoded):
        do { try decoded.spec.validate() } catch { fatalError("decoded an invalid spec: \(error)") }
    case .failure(let error):
        precondition(!error.description.isEmpty)
    }

    // The text parsers, on the bytes as text when they are text.
    if let text = String(validating: bytes, as: UTF8.self) {
        if let duration = DurationText.parse(text) {
            precondition(duration >= .zero && duration <= JobSpec.maximumDuration, "duration \(text)")
        }
        if let size = SizeText.parse(text) { precondition((0...SizeText.maximum).contains(size), "size \(text)") }
        if let signal = Signal(parsing: text) { precondition((1...64).contains(signal.rawValue), "signal \(text)") }
        // Quoting: any string survives the writer and the parser.
        guard case .success(.string(let back)) = JSONParser.parse(Array(JSONWriter.quote(text).utf8)), back == text else {
            fatalError("quoting changed \(text.debugDescription)")
        }
    }
    return 0
}
