import Foundation
import Synchronization
import XCTest
@testable import Corral

final class OutputTests: CorralTestCase {
    private let mebibyte = 1 << 20

    /// A 1 MiB file of random bytes, and a job that writes it `count` times.
    private func repeatingJob(count: Int) throws -> (block: [UInt8], spec: JobSpec) {
        var block = [UInt8](repeating: 0, count: mebibyte)
        var generator = SystemRandomNumberGenerator()
        for index in block.indices { block[index] = UInt8.random(in: 0...255, using: &generator) }
        let path = scratch.appendingPathComponent("block.bin").path
        try Data(block).write(to: URL(fileURLWithPath: path))
        let spec = JobSpec.shell("i=0; while [ $i -lt \(count) ]; do cat '\(path)'; i=$((i+1)); done")
        return (block, spec)
    }

    private func equal(_ bytes: ArraySlice<UInt8>, _ block: ArraySlice<UInt8>) -> Bool {
        bytes.count == block.count && bytes.withUnsafeBytes { a in
            block.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
        }
    }

    /// Scenario 4, no cap: every one of 200 MiB arrives, in order.
    func testTwoHundredMegabytesUncappedArriveIntact() async throws {
        var (block, spec) = try repeatingJob(count: 200)
        spec.outputLimit = .unlimited

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.droppedBytes, 0)
        XCTAssertEqual(result.stdout.bytes.count, 200 * mebibyte)
        let bytes = result.stdout.bytes
        for index in 0..<200 {
            let slice = bytes[(index * mebibyte)..<((index + 1) * mebibyte)]
            guard equal(slice, block[...]) else { return XCTFail("copy \(index) differs") }
        }
        block = []
    }

    /// Scenario 4, 1 MiB cap: the head and the tail are kept, the count of
    /// dropped bytes is exact, and the job is never blocked.
    func testTwoHundredMegabytesUnderTheDefaultCapKeepHeadAndTail() async throws {
        let (block, spec) = try repeatingJob(count: 200)
        XCTAssertEqual(spec.outputLimit, .bytes(mebibyte), "1 MiB is the default")

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .exited(0), "finished normally")
        XCTAssertEqual(result.stdout.bytes.count, mebibyte)
        XCTAssertEqual(result.stdout.droppedBytes, 199 * mebibyte)
        XCTAssertEqual(result.stdout.totalBytes, 200 * mebibyte)
        XCTAssertEqual(result.stdout.headCount, mebibyte / 2)
        let half = mebibyte / 2
        XCTAssertTrue(equal(result.stdout.bytes[..<half], block[..<half]), "head is the stream's first half MiB")
        XCTAssertTrue(equal(result.stdout.bytes[half...], block[half...]), "tail is the stream's last half MiB")
    }

    /// Scenario 6: every byte value, no trailing newline, exit 3.
    func testAllByteValuesWithoutNewlineAndExitCode() async throws {
        let all = (0...255).map { UInt8($0) }
        let path = scratch.appendingPathComponent("bytes.bin").path
        try Data(all).write(to: URL(fileURLWithPath: path))

        let result = try await runner.run(.shell("cat '\(path)'; cat '\(path)' >&2; exit 3"))

        XCTAssertEqual(result.outcome, .exited(3))
        XCTAssertEqual(result.stdout.bytes, all)
        XCTAssertEqual(result.stderr.bytes, all)
    }

    func testCombinedOutputKeepsArrivalOrder() async throws {
        var spec = JobSpec.shell("echo one; echo two >&2; echo three; echo four >&2")
        spec.output = .combined
        let result = try await runner.run(spec)
        XCTAssertEqual(result.stdout.text, "one\ntwo\nthree\nfour\n")
        XCTAssertEqual(result.stderr.bytes, [])
    }

    func testDiscardedOutput() async throws {
        var spec = JobSpec.shell("echo out; echo err >&2; exit 2")
        spec.output = .discarded
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .exited(2))
        XCTAssertEqual(result.stdout.totalBytes, 0)
        XCTAssertEqual(result.stderr.totalBytes, 0)
    }

    func testLiveOutputHookSeesEveryChunkBeforeTheResult() async throws {
        let seen = Locked<[OutputChunk.Stream: [UInt8]]>([:])
        let result = try await runner.run(.shell("for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.05; done")) { chunk in
            seen.withLock { $0[chunk.stream, default: []] += chunk.bytes }
        }
        let chunks = seen.withLock { $0 }
        XCTAssertEqual(chunks[.stdout], result.stdout.bytes)
        XCTAssertEqual(chunks[.stderr], result.stderr.bytes)
        XCTAssertEqual(result.stdout.text, "out1\nout2\nout3\n")
    }
}
