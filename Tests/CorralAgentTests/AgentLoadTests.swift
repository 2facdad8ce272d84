import CorralTestSupport
import Foundation
import GRDB
import NIOCore
import XCTest
import CorralFormat
@testable import CorralAgent

/// Issue 13, items 5 and 6: a stalled event stream client costs bounded
/// memory and neither delays other jobs nor the shutdown; the list does not
/// read results.
final class AgentLoadTests: AgentTestCase {
    /// The bound on the agent's peak RSS while a job writes 200 MB with
    /// `--max-output 8MiB` to a stalled subscriber: the agent's own ~42 MB,
    /// plus 12 × the kept output (the runner's head and tail, the chunks
    /// pending for the journal and the subscriber, the result assembled and
    /// encoded on the delivery thread, the stored tail, SQLite's caches,
    /// each in the arena of the thread that made it). Measured on the
    /// 2-core machine: 86–125 MiB from run to run, with the timing of the
    /// journal's batches. The job writes 200 MB (the issue asks for 50) so
    /// that a stream buffered whole would overshoot the bound by far, not
    /// by a margin the noise could hide.
    static let stalledClientPeakRSS = (48 << 20) + 12 * (8 << 20)
    static let stalledClientWrites = 200 << 20

    func testStalledEventStreamClientIsDroppedAndCostsBoundedMemory() throws {
        let agent = try startAgent(["--max-output", "8MiB", "--write-timeout", "2s", "--shutdown-grace", "2s"])
        let client = agent.client
        // 200 MB of output, then a pause (so the stream stays live a while).
        let big = try XCTUnwrap(try client.post("/v1/jobs", json: """
            {"shell":"head -c \(AgentLoadTests.stalledClientWrites) /dev/zero | tr '\\\\0' x; sleep 3","timeout":"120s"}
            """).json["id"] as? String)
        let stalled = try StalledClient(port: agent.port, path: "/v1/jobs/\(big)/events")
        defer { stalled.close() }
        // Another job's deadline holds meanwhile.
        let deadline = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"sleep 30","timeout":"1s","kill_after":"1s"}"#).json["id"] as? String)
        XCTAssertTrue(waitUntil { self.listed(client, "timed_out").contains(deadline) })

        // The stalled stream is dropped, by its write deadline or (if the
        // kernel took every byte sent) for falling 256 events behind: either
        // way the connection is closed. The job ends.
        XCTAssertTrue(waitUntil(upTo: .seconds(20)) { stalled.isClosedByAgent(port: agent.port) }, "the stalled stream was not closed")
        XCTAssertTrue(waitUntil { agent.output.contains("event stream of job \(big) dropped") }, agent.output)
        XCTAssertTrue(waitUntil(upTo: .seconds(60)) { self.listed(client, "exited").contains(big) })
        // Measured before this test reads the 8 MiB result itself.
        let peak = try peakRSS(of: agent.pid)
        print("stalled client, \(AgentLoadTests.stalledClientWrites >> 20) MiB written, 8 MiB kept: agent peak RSS \(peak >> 20) MiB (bound \(AgentLoadTests.stalledClientPeakRSS >> 20) MiB)")
        XCTAssertLessThan(peak, AgentLoadTests.stalledClientPeakRSS)

        let timedOut = try client.get("/v1/jobs/\(deadline)").json
        XCTAssertLessThan(timedOut["duration_s"] as? Double ?? 99, 3.0, "\(timedOut)")
        let job = try client.get("/v1/jobs/\(big)").json
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout_dropped"] as? Int, AgentLoadTests.stalledClientWrites - 8 << 20)
        // The journaled first 8 MiB, the marker line, the kept 4 MiB tail.
        let output = try client.get("/v1/jobs/\(big)/output?stream=stdout")
        let gap = AgentLoadTests.stalledClientWrites - 12 << 20
        XCTAssertEqual(output.headers["x-corral-dropped-bytes"], "\(gap)")
        XCTAssertEqual(output.body.count, 8 << 20 + "\n… \(gap) bytes of stdout dropped …\n".utf8.count + 4 << 20)
        // A resume after the drop gets what follows (here: past the last chunk, the result).
        let resumed = SSE.parse(try client.events("/v1/jobs/\(big)/events", headers: ["Last-Event-ID": "1000000"]).text)
        XCTAssertEqual(resumed.map(\.event), ["result"])
    }

    /// A stalled client on a live job that printed 50 MB does not hold up
    /// the shutdown, even with the default 10 s write deadline: it is 1 s
    /// once shutting down.
    func testStalledEventStreamClientDoesNotHoldUpTheShutdown() throws {
        let agent = try startAgent(["--max-output", "8MiB", "--shutdown-grace", "2s"])
        let client = agent.client
        let live = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"head -c 52428800 /dev/zero | tr '\\0' y; sleep 300","timeout":"10m"}"#).json["id"] as? String)
        let stalled = try StalledClient(port: agent.port, path: "/v1/jobs/\(live)/events")
        defer { stalled.close() }
        XCTAssertTrue(waitForState(client, live, "running"))
        XCTAssertTrue(waitUntil { (try? client.get("/v1/jobs/\(live)/output?stream=stdout").body.count) == 8 << 20 })
        let stopped = ContinuousClock.now
        agent.terminate()
        let result = try XCTUnwrap(agent.waitForExit(upTo: .seconds(30)))
        let took = ContinuousClock.now - stopped
        print("stalled client at SIGTERM: exited after \(took) (grace 2 s)")
        XCTAssertLessThan(took, .seconds(2 + 5), "grace 2 s + 5 s")
        guard case .exited(0) = result.outcome else { return XCTFail("\(result.outcome) \(agent.output)") }
        XCTAssertTrue(agent.output.contains("event stream of job \(live) dropped"), agent.output)
    }

    /// Output stored once reads back exactly: an overflowing stream (head
    /// from the chunks, tail stored with the result) and a combined pipe.
    func testResultOutputReadsBackFromTheChunksAndTheTail() throws {
        let agent = try startAgent()
        let client = agent.client
        let full = (1...2000).map { "\($0)\n" }.joined()
        let overflow = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"seq 1 2000","max_output":"1KiB"}"#).json["id"] as? String)
        let combined = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"echo out; sleep 0.1; echo err >&2; sleep 0.1; echo out again","combine_output":true}"#).json["id"] as? String)

        let result = try XCTUnwrap(try waitForFinal(client, overflow)["result"] as? [String: Any])
        let head = Array((result["stdout"] as? String ?? "").utf8)
        let tail = Array((result["stdout_tail"] as? String ?? "").utf8)
        let dropped = result["stdout_dropped"] as? Int ?? -1
        let expected = Array(full.utf8)
        XCTAssertEqual(head.count + tail.count, 1024)
        XCTAssertEqual(head.count + dropped + tail.count, expected.count)
        XCTAssertTrue(head.elementsEqual(expected.prefix(head.count)), "the head: \(String(decoding: head, as: UTF8.self))")
        XCTAssertTrue(tail.elementsEqual(expected.suffix(tail.count)), "the tail: \(String(decoding: tail, as: UTF8.self))")
        // The chunks keep the first 1 KiB; the marker; the tail.
        let gap = head.count + dropped - 1024
        XCTAssertEqual(try client.get("/v1/jobs/\(overflow)/output").body,
                       Array(expected.prefix(1024)) + (expected[1023] == UInt8(ascii: "\n") ? [] : [UInt8(ascii: "\n")])
                       + Array("… \(gap) bytes of stdout dropped …\n".utf8) + tail)

        let bytes = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"printf '\\377\\376'; printf 'a\"b\\t\\001\\\\' >&2"}"#).json["id"] as? String)
        let raw = try XCTUnwrap(try waitForFinal(client, bytes)["result"] as? [String: Any])
        XCTAssertEqual(raw["stdout_base64"] as? String, "//4=", "\(raw)")
        XCTAssertNil(raw["stdout"])
        XCTAssertEqual(raw["stderr"] as? String, "a\"b\t\u{1}\\", "\(raw)")
        for text in ["", "plain", "q\"uote\\back\nnl\r\t\u{1}\u{1f}é€😀"] {
            var buffer = ByteBuffer()
            ResultText.writeQuoted(Array(text.utf8)[...], into: &buffer)
            XCTAssertEqual(buffer.readString(length: buffer.readableBytes), JSONWriter.quote(text))
        }

        let both = try XCTUnwrap(try waitForFinal(client, combined)["result"] as? [String: Any])
        XCTAssertEqual(both["stdout"] as? String, "out\nerr\nout again\n")
        XCTAssertEqual(both["stderr"] as? String, "")
        let stored = try DatabaseQueue(path: dataDirectory + "/journal.sqlite").read { db in
            try Row.fetchAll(db, sql: "SELECT job_id, stream, head, length(tail) AS tail FROM result_output ORDER BY job_id, stream")
                .map { "\($0["job_id"] as String) \($0["stream"] as String) \($0["head"] as Int) \($0["tail"] as Int)" }
        }
        XCTAssertEqual(stored, ["\(overflow) stderr 0 0", "\(overflow) stdout 512 512", "\(combined) stderr 0 0",
                                "\(combined) stdout 18 0", "\(bytes) stderr 6 0", "\(bytes) stdout 2 0"].sorted(),
                       "head from the chunks, the kept end as the tail")
    }

    /// Ids of the jobs in `state`, from the list (which reads no results).
    private func listed(_ client: HTTPClient, _ state: String) -> [String] {
        let page = (try? client.get("/v1/jobs?state=\(state)").json["jobs"] as? [[String: Any]]) ?? []
        return page.compactMap { $0["id"] as? String }
    }

    func testListingJobsDoesNotReadTheirResults() throws {
        XCTAssertFalse(Journal.listQuery(filter: "").contains("result"), Journal.listQuery(filter: ""))
        let agent = try startAgent(["--max-output", "2MiB", "--max-jobs", "4"])
        let client = agent.client
        var ids: [String] = []
        for _ in 0..<16 {
            let created = try client.post("/v1/jobs", json: #"{"shell":"head -c 2000000 /dev/zero | tr '\\0' z; head -c 1000000 /dev/zero | tr '\\0' e >&2"}"#)
            ids.append(try XCTUnwrap(created.json["id"] as? String))
        }
        for id in ids { XCTAssertEqual(try waitForFinal(client, id)["state"] as? String, "exited") }

        // Output is stored once: in the chunks, not again in the result.
        let stored = try DatabaseQueue(path: dataDirectory + "/journal.sqlite").read { db in
            try Int.fetchOne(db, sql: "SELECT MAX(length(result_json)) FROM jobs") ?? 0
        }
        XCTAssertLessThan(stored, 4096, "result_json holds output again")
        let one = try client.get("/v1/jobs/\(ids[0])").json["result"] as? [String: Any]
        XCTAssertEqual((one?["stdout"] as? String)?.utf8.count, 2_000_000)
        XCTAssertEqual((one?["stderr"] as? String)?.utf8.count, 1_000_000)

        let before = try bytesRead(by: agent.pid)
        for _ in 0..<5 {
            let page = try client.get("/v1/jobs?limit=50")
            XCTAssertEqual((page.json["jobs"] as? [Any])?.count, 16)
        }
        let read = try bytesRead(by: agent.pid) - before
        print("5 list polls over 16 jobs with 48 MB of output: \(read) bytes read")
        XCTAssertLessThan(read, 4 << 20, "the list reads results or output")
    }

    /// VmHWM of /proc/PID/status, in bytes.
    private func peakRSS(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    /// `rchar` of /proc/PID/io: bytes the process read through read(2) and pread(2).
    private func bytesRead(by pid: Int32) throws -> Int {
        let io = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
        let line = try XCTUnwrap(io.split(separator: "\n").first { $0.hasPrefix("rchar:") })
        return Int(line.split(separator: " ").last ?? "") ?? 0
    }
}

/// A client that subscribes to an event stream and never reads, with a
/// tiny receive buffer so that the agent's writes back up at once.
final class StalledClient {
    let fd: Int32

    init(port: UInt16, path: String) throws {
        fd = try HTTPClient.connectLoopback(port: port, receiveBuffer: 4096)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
            throw HTTPClient.Failure(description: "write: errno \(errno)")
        }
    }

    /// Whether the agent closed its end: its socket for this connection is
    /// gone from /proc/net/tcp or orphaned (inode 0). The client, which
    /// reads nothing, would not see the FIN queued behind unsent data.
    func isClosedByAgent(port: UInt16) -> Bool {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let mine = UInt16(bigEndian: address.sin_port)
        let text = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9,
                  fields[1].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) }) == port,
                  fields[2].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) }) == mine else { continue }
            return fields[9] == "0"
        }
        return true
    }

    func close() { Glibc.close(fd) }
}
