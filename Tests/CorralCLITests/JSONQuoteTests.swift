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
}
