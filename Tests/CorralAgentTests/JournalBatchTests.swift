import Corral
import XCTest
@testable import CorralAgent

/// The order a flush commits in: a result never ahead of its job's output,
/// so a crash between two transactions never leaves a final result whose
/// kept output the journal lacks (a restart read such a result with its
/// head cut and nothing saying so).
final class JournalBatchTests: XCTestCase {
    private func final(_ id: String) -> JournalBatch.Final {
        JournalBatch.Final(jobID: id, state: .exited, finishedAt: .now(), startedAt: nil, exitCode: 0, signal: nil,
                           durationSeconds: 1, resultJSON: "{}", message: nil)
    }

    private func chunk(_ id: String, _ seq: Int, bytes: Int) -> JournalBatch.Chunk {
        JournalBatch.Chunk(jobID: id, seq: seq, stream: "stdout", bytes: Array(repeating: 0x61, count: bytes))
    }

    func testEveryResultIsCommittedAfterItsJobsOutputAndQuietJobsFirst() {
        var batch = JournalBatch()
        // 70 quiet jobs (results only), 30 with output: two chunks each, of
        // 100 KiB, so the chunks span several parts.
        batch.finals = (0..<100).map { final("j\($0)") }
        batch.chunks = (70..<100).flatMap { [chunk("j\($0)", 1, bytes: 100 << 10), chunk("j\($0)", 2, bytes: 100 << 10)] }
        let parts = batch.parts()
        var committedChunks: [String: Int] = [:]
        var committedFinals: [String] = []
        for part in parts {
            XCTAssertLessThanOrEqual(part.finals.count, 64)
            XCTAssertTrue(part.chunks.isEmpty || part.chunks.count == 1 || part.chunks.reduce(0) { $0 + $1.bytes.count } <= 256 << 10)
            for chunk in part.chunks { committedChunks[chunk.jobID, default: 0] += 1 }
            for final in part.finals {
                let expected = batch.chunks.filter { $0.jobID == final.jobID }.count
                XCTAssertEqual(committedChunks[final.jobID, default: 0], expected, "\(final.jobID)'s result before its output")
                committedFinals.append(final.jobID)
            }
        }
        XCTAssertEqual(Set(committedFinals).count, 100, "every result once")
        XCTAssertEqual(committedFinals.count, 100)
        XCTAssertEqual(committedChunks.values.reduce(0, +), 60, "every chunk")
        // What clients wait for most goes first: the quiet jobs' results lead.
        XCTAssertEqual(Array(committedFinals.prefix(70)), (0..<70).map { "j\($0)" })
    }
}
