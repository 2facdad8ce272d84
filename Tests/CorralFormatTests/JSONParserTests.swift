import Foundation
import XCTest
import Corral
import CorralFormat

final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) -> Result<JSONValue, JSONParser.Failure> { JSONParser.parse(Array(text.utf8)) }

    private func failure(_ bytes: [UInt8]) -> JSONParser.Failure? {
        if case .failure(let failure) = JSONParser.parse(bytes) { return failure }
        return nil
    }

    func testAcceptsWhatRFC8259Allows() throws {
        let value = try parse(#" {"a": [1, -2.5e3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}} "#).get()
        guard case .object(let object) = value, case .array(let items)? = object["a"] else { return XCTFail("\(value)") }
        XCTAssertEqual(items.count, 6)
        XCTAssertEqual(items[1], .number(JSONNumber(text: "-2.5e3")))
        XCTAssertEqual(items[5], .string("x\"\\/\u{08}\u{0C}\n\r\té😀"))
        XCTAssertEqual(object["b"], .object([:]))
        XCTAssertEqual(try parse("0").get(), .number(JSONNumber(0)))
    }

    func testRefusesWhatFoundationRepairsOrGuesses() {
        let cases: [(bytes: [UInt8], message: String, offset: Int)] = [
            (Array(#"{"a": ""#.utf8) + [0xFF, 0x22, 0x7D], "invalid UTF-8", 7),
            ([0x22, 0xC0, 0xAF, 0x22], "invalid UTF-8", 1),             // overlong '/'
            ([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8", 1),       // an encoded surrogate
            (Array(#"{"a": 1, "a": 2}"#.utf8), #"duplicate key "a""#, 9),
            // Two spellings of é: one key to Swift, told apart in the message.
            (Array("{\"\u{E9}\": 1, \"e\u{301}\": 2}".utf8), #"duplicate key: "e\u{301}" and "\u{e9}" are one key in Unicode"#, 10),
            (Array("\"a\u{0}b\"".utf8), "raw control character", 2),
            (Array("\"a\nb\"".utf8), "raw control character", 2),
            (Array(#""\ud800""#.utf8), "high surrogate", 7),
            (Array(#""\udc00""#.utf8), "lone low surrogate", 7),
            (Array(#""\x41""#.utf8), "invalid escape", 2),
            (Array("01".utf8), "leading zero", 0),
            (Array("1.".utf8), "after the decimal point", 2),
            (Array("-".utf8), "expected a digit", 1),
            (Array("+1".utf8), "expected a value", 0),
            (Array("NaN".utf8), "expected a value", 0),
            (Array("{} x".utf8), "after the JSON value", 3),
            (Array("[1,]".utf8), "expected a value", 3),
            (Array(#"{"a":1,}"#.utf8), "expected a key", 7),
            ([0xEF, 0xBB, 0xBF] + Array("{}".utf8), "byte order mark", 0),
            (Array("".utf8), "unexpected end of input", 0),
            (Array(String(repeating: "[", count: 65).utf8) + Array(String(repeating: "]", count: 65).utf8), "nested deeper", 64),
        ]
        for (bytes, message, offset) in cases {
            guard let failure = failure(bytes) else { XCTFail("accepted \(bytes)"); continue }
            XCTAssertTrue(failure.message.contains(message), "\(bytes): \(failure)")
            XCTAssertEqual(failure.offset, offset, "\(bytes): \(failure)")
        }
        let depth = JSONParser.maximumDepth
        XCTAssertNoThrow(try JSONParser.parse(Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8)).get())
        XCTAssertNotNil(failure(Array(String(repeating: "[", count: 1_000_000).utf8)), "deep input is refused, not a stack overflow")
    }

    func testNumbersAreExactIntegersOnlyWhenTheyAreWholeAndFit() {
        let cases: [(String, Int64?)] = [
            ("0", 0), ("-0", 0), ("42", 42), ("4.0", 4), ("4.10e1", 41), ("1e2", 100), ("1E+2", 100),
            ("1.5", nil), ("9.9", nil), ("1e-1", nil), ("100e-2", 1), ("1e19", nil), ("9223372036854775807", .max),
            ("9223372036854775808", nil), ("-9223372036854775808", .min), ("-9223372036854775809", nil),
            ("1e99999999999999999999", nil), ("0e99999999999999999999", 0), ("1e-99999999999999999999", nil),
            ("4294967295", 4_294_967_295), ("0.000", 0),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(JSONNumber(text: text).integer, expected, text)
        }
        XCTAssertEqual(JSONNumber(text: "1e400").double, .infinity)
    }

    /// Property: any value the writer produces parses back to an equal value;
    /// deterministic (seeded), so a failure reproduces.
    func testWhatIsWrittenParsesBackEqual() throws {
        var random = SeededGenerator(seed: 0x5eed)
        for round in 0..<2_000 {
            let value = JSONValue.random(using: &random, depth: 0)
            let text = value.jsonText
            XCTAssertEqual(try JSONParser.parse(Array(text.utf8)).get(), value, "round \(round): \(text)")
            // Foundation agrees that the text is JSON.
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]), text)
        }
    }

    func testQuotingRoundTripsEveryScalarClass() throws {
        var random = SeededGenerator(seed: 42)
        for _ in 0..<2_000 {
            let text = String.random(using: &random)
            XCTAssertEqual(try JSONParser.parse(Array(JSONWriter.quote(text).utf8)).get(), .string(text))
        }
    }

    /// Random mutations of real specs never crash the parser or the spec
    /// decoder, and the decoder's answer is a spec or an error naming why.
    func testMutatedSpecsNeverCrashTheDecoder() {
        var random = SeededGenerator(seed: 7)
        let seeds = SpecSeeds.lines.map { Array($0.utf8) }
        for _ in 0..<20_000 {
            var bytes = seeds[Int(random.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + random.next() % 4) {
                let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count))
                switch random.next() % 4 {
                case 0 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.insert(SpecSeeds.interesting[Int(random.next() % UInt64(SpecSeeds.interesting.count))], at: position)
                case 2 where !bytes.isEmpty: bytes.remove(at: position)
                default: bytes.insert(contentsOf: Array(SpecSeeds.numbers[Int(random.next() % UInt64(SpecSeeds.numbers.count))].utf8), at: position)
                }
            }
            switch JobSpecJSON.decode(bytes: bytes, defaultID: "x") {
            case .success(let decoded): XCTAssertNoThrow(try decoded.spec.validate())
            case .failure(let error): XCTAssertFalse(error.description.isEmpty)
            }
        }
    }

    /// null is the field left out, for every field of a spec but the
    /// command's: it decodes to the same spec as the line without it (with
    /// a default timeout, as `corral batch --timeout` gives, kept).
    func testNullIsTheFieldLeftOutForEveryField() throws {
        var defaults = JobSpecJSON.Defaults()
        defaults.timeout = .seconds(7)
        func decode(_ text: String) throws -> JobSpec {
            switch JobSpecJSON.decode(bytes: Array(text.utf8), defaultID: "x", defaults: defaults) {
            case .success(let decoded): return decoded.spec
            case .failure(let error): throw error
            }
        }
        let plain = try decode(#"{"argv": ["true"]}"#)
        for field in JobSpecJSON.fields.sorted() where !["argv", "shell"].contains(field) {
            XCTAssertEqual(try decode(#"{"argv": ["true"], "\#(field)": null}"#), plain, field)
        }
        // The command is given, argv or shell: a null one is no way out of that.
        for text in [#"{"argv": null, "shell": "true"}"#, #"{"argv": null}"#, #"{"shell": null}"#] {
            if case .success = JobSpecJSON.decode(bytes: Array(text.utf8), defaultID: "x") { XCTFail(text) }
        }
        XCTAssertEqual(plain.timeout, .seconds(7))
    }

    /// A variable set in `env` and unset in `unset_env` under another
    /// spelling of one Unicode name is refused, naming both spellings; the
    /// same bytes unset what env set.
    func testTwoSpellingsOfOneVariableNameAreRefused() {
        let mixed = "{\"argv\": [\"env\"], \"env\": {\"\u{E9}\": \"1\"}, \"unset_env\": [\"e\u{301}\"]}"
        guard case .failure(let error) = JobSpecJSON.decode(bytes: Array(mixed.utf8), defaultID: "x") else { return XCTFail(mixed) }
        XCTAssertEqual(error.field, "unset_env")
        XCTAssertTrue(error.message.contains(#""e\u{301}" and env's "\u{e9}""#), error.message)
        let both = "{\"argv\": [\"env\"], \"unset_env\": [\"\u{E9}\", \"e\u{301}\"]}"
        guard case .failure(let unsetTwice) = JobSpecJSON.decode(bytes: Array(both.utf8), defaultID: "x") else { return XCTFail(both) }
        XCTAssertTrue(unsetTwice.message.contains(#""e\u{301}" and "\u{e9}""#), unsetTwice.message)
        let same = "{\"argv\": [\"env\"], \"env\": {\"\u{E9}\": \"1\"}, \"unset_env\": [\"\u{E9}\"]}"
        guard case .success = JobSpecJSON.decode(bytes: Array(same.utf8), defaultID: "x") else { return XCTFail(same) }
    }
}

/// Real specs and the pieces the mutation test splices into them.
enum SpecSeeds {
    static let lines = [
        #"{"id": "build", "argv": ["make", "-j4"], "timeout": "10m"}"#,
        #"{"shell": "sleep 5; echo done", "timeout": 2, "env": {"MODE": "ci"}, "signal": "INT"}"#,
        #"{"id": 7, "argv": ["sh", "-c", "exit 3"], "kill_after": 0.5, "drain": "250ms", "max_output": "64KiB"}"#,
        #"{"argv": ["id"], "user": 65534, "group": 65534, "cwd": "/tmp", "stdin": "x\n", "leave_running": true}"#,
        #"{"argv": ["env"], "clear_env": true, "unset_env": ["PATH"], "combine_output": true, "signal": 15}"#,
    ]
    static let interesting: [UInt8] = [0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x80, 0xC0, 0xED, 0xF4, 0xFF]
    static let numbers = ["1e19", "1e308", "-1", "4294967295", "1.5", "9.9", "99999999999h", "1e-400", "0", "18446744073709551616"]
}

/// A small deterministic generator (SplitMix64), so property tests reproduce.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    static func random(using random: inout SeededGenerator) -> String {
        let classes: [ClosedRange<UInt32>] = [0x00...0x1F, 0x20...0x7E, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<(random.next() % 12) {
            let range = classes[Int(random.next() % UInt64(classes.count))]
            scalars.append(Unicode.Scalar(UInt32.random(in: range, using: &random))!)
        }
        return String(scalars)
    }
}

extension JSONValue {
    static func random(using random: inout SeededGenerator, depth: Int) -> JSONValue {
        switch random.next() % (depth > 4 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(random.next() % 2 == 0)
        case 2:
            let numbers = ["0", "-1", "42", "1.5", "-2.5e-3", "1E+300", "9223372036854775808", "123456789.000"]
            return .number(JSONNumber(text: numbers[Int(random.next() % UInt64(numbers.count))]))
        case 3: return .string(String.random(using: &random))
        case 4: return .array((0..<(random.next() % 4)).map { _ in JSONValue.random(using: &random, depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<(random.next() % 4) { members[String.random(using: &random)] = .random(using: &random, depth: depth + 1) }
            return .object(members)
        }
    }
}
