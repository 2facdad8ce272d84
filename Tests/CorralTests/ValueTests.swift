import XCTest
@testable import Corral

/// The pure parts: the output cap, signal names, time formatting.
final class ValueTests: XCTestCase {
    /// Feeds `stream` in chunks of the given sizes and checks the kept bytes
    /// against the model: first half, last half, exact dropped count.
    private func check(limit: Int, stream: [UInt8], chunks: [Int], file: StaticString = #filePath, line: UInt = #line) {
        var buffer = OutputBuffer(limit: .bytes(limit))
        var offset = 0
        var sizes = chunks.makeIterator()
        while offset < stream.count {
            let size = min(sizes.next() ?? 7, stream.count - offset)
            stream[offset..<(offset + size)].withUnsafeBytes { buffer.append($0) }
            offset += size
        }
        let captured = buffer.take().captured()
        if stream.count <= limit {
            XCTAssertEqual(captured.bytes, stream, file: file, line: line)
            XCTAssertEqual(captured.droppedBytes, 0, file: file, line: line)
        } else {
            let head = limit / 2
            let tail = limit - head
            XCTAssertEqual(captured.bytes, Array(stream.prefix(head) + stream.suffix(tail)), file: file, line: line)
            XCTAssertEqual(captured.droppedBytes, stream.count - limit, file: file, line: line)
            XCTAssertEqual(captured.headCount, head, file: file, line: line)
        }
        XCTAssertEqual(captured.totalBytes, stream.count, file: file, line: line)
    }

    func testOutputCapKeepsHeadAndTailForEveryChunking() {
        let stream = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for limit in [0, 1, 2, 3, 10, 99, 100, 101, 999, 1000, 5000] {
            for chunks in [[1], [3], [64], [1000], [7, 200, 1, 500, 13], [333, 333, 334]] {
                check(limit: limit, stream: stream, chunks: chunks)
                check(limit: limit, stream: Array(stream.prefix(limit / 2 + 1)), chunks: chunks)
            }
        }
    }

    func testUnlimitedKeepsEverything() {
        var buffer = OutputBuffer(limit: .unlimited)
        let stream = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        stream.withUnsafeBytes { buffer.append($0) }
        let captured = buffer.take().captured()
        XCTAssertEqual(captured.bytes, stream)
        XCTAssertEqual(captured.droppedBytes, 0)
        // Taking moves the bytes out: the buffer is empty afterwards.
        XCTAssertEqual(buffer.take().captured().bytes, [])
    }

    func testSignalParsing() {
        XCTAssertEqual(Signal(parsing: "TERM"), .terminate)
        XCTAssertEqual(Signal(parsing: "SIGTERM"), .terminate)
        XCTAssertEqual(Signal(parsing: "term"), .terminate)
        XCTAssertEqual(Signal(parsing: "15"), .terminate)
        XCTAssertEqual(Signal(parsing: "kill"), .kill)
        XCTAssertNil(Signal(parsing: "TERMINATOR"))
        XCTAssertNil(Signal(parsing: "0"))
        XCTAssertNil(Signal(parsing: "99"))
        XCTAssertEqual(Signal.kill.name, "KILL")
        XCTAssertEqual(Signal.user1.description, "SIGUSR1")
        // Every name a result can carry reads back as its signal.
        for number in Int32(1)...64 {
            XCTAssertEqual(Signal(parsing: Signal(rawValue: number).name)?.rawValue, number, Signal(rawValue: number).name)
        }
        XCTAssertEqual(Signal(parsing: "SIGRTMAX")?.rawValue, 64)
        XCTAssertEqual(Signal(parsing: "rtmax-1")?.rawValue, 63)
        for text in ["RTMIN+31", "RTMIN+-1", "RTMAX-31", "RTMIN+", "RTMIN+1x", "RTMIN+99999999999"] {
            XCTAssertNil(Signal(parsing: text), text)
        }
    }

    func testWallClockFormatsAsRFC3339WithMilliseconds() {
        XCTAssertEqual(WallClockTime(nanosecondsSince1970: 0).rfc3339, "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(WallClockTime(nanosecondsSince1970: 1_795_249_440_123_456_789).rfc3339, "2026-11-21T08:24:00.123Z")
    }

    func testTimerMillisecondsRoundUp() {
        XCTAssertEqual(Duration.nanoseconds(1).timerMilliseconds, 1)
        XCTAssertEqual(Duration.milliseconds(1500).timerMilliseconds, 1500)
        XCTAssertEqual(Duration.seconds(-1).timerMilliseconds, 0)
    }
}
