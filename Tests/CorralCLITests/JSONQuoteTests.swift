import CorralFormat
import Foundation
import XCTest

/// Result lines quote every string through `JSONWriter.quote`: plain text is
/// copied whole, anything else escaped; both must read back unchanged.
final class JSONQuoteTests: XCTestCase {
    func testQuotedStringsReadBackUnchanged() throws {
        let samples = [
            "", "c1x2y3-42", "/usr/bin/env", "2026-11-21T12:00:00.000Z", "naïve ☃ 日本",
            "say \"hi\"", "back\\slash", "line\nbreak\r\ttab", "bell\u{07} nul\u{00} esc\u{1B}", "\u{1F}\u{7F}",
        ]
        for text in samples {
            let quoted = JSONWriter.quote(text)
            let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
            XCTAssertEqual(decoded, [text], quoted)
            XCTAssertFalse(quoted.dropFirst().dropLast().unicodeScalars.contains { $0.value < 0x20 }, quoted)
        }
        XCTAssertEqual(JSONWriter.quote("plain"), "\"plain\"")
        XCTAssertEqual(JSONWriter.quote("a\"b"), "\"a\\\"b\"")
    }

    /// Every escape class at every position: random strings of control
    /// characters, quotes, backslashes, ASCII and 2-, 3- and 4-byte scalars
    /// read back equal through Corral's own strict parser, and the literal
    /// holds no raw control character.
    func testRandomStringsReadBackThroughTheStrictParser() throws {
        let alphabet: [Unicode.Scalar] = (0..<0x20).map { Unicode.Scalar($0)! }
            + ["\"", "\\", "/", "a", "Z", " ", "~", "\u{7F}", "é", "ß", "☃", "日", "\u{FFFD}", "😀", "\u{10FFFF}"]
        var generator = SystemRandomNumberGenerator()
        for round in 0..<2_000 {
            var text = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...(round % 50 == 0 ? 5_000 : 40), using: &generator) {
                text.append(alphabet.randomElement(using: &generator)!)
            }
            let string = String(text)
            let quoted = JSONWriter.quote(string)
            XCTAssertEqual(try JSONParser.parse(Array(quoted.utf8)).get(), .string(string), quoted)
            XCTAssertFalse(quoted.utf8.contains { $0 < 0x20 }, quoted)
        }
    }
}
