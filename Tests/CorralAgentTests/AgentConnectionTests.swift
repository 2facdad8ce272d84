import Foundation
import XCTest

/// Connections are bounded: idle clients cannot take the agent's
/// descriptors, and idle connections end after `--idle-timeout`.
final class AgentConnectionTests: AgentTestCase {
    func testManyIdleConnectionsNeitherStarveTheAPINorStayOpen() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit (util-linux)")
        // 256 descriptors: at most 128 connections, the rest for jobs and the journal.
        let agent = try launch("/usr/bin/prlimit", ["--nofile=256:256", "--", AgentTestCase.binary, "agent",
                                                    "--listen", "127.0.0.1:0", "--data-dir", dataDirectory,
                                                    "--idle-timeout", "4s", "--flush-interval", "50ms"])
        XCTAssertTrue(agent.waitUntilListening(), agent.output)
        let client = agent.client

        var idle: [HTTPClient.Connection] = []
        defer { idle.forEach { $0.close() } }
        for _ in 0..<300 { idle.append(try HTTPClient.Connection(port: agent.port, timeout: .seconds(5))) }
        let opened = ContinuousClock.now

        // The API answers at once (long before the idle timeout), and a job
        // still gets its pipes.
        XCTAssertEqual(try client.get("/healthz").status, 200)
        XCTAssertLessThan(ContinuousClock.now - opened, .seconds(2))
        let created = try client.post("/v1/jobs", json: #"{"argv":["echo","still serving"]}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let job = try waitForFinal(client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "still serving\n", "\(job)")
        XCTAssertLessThan(openDescriptors(agent.pid), 200, "the agent holds too many descriptors")

        // Every idle connection is closed by the agent: the oldest when
        // newer ones came, the rest after the idle timeout.
        XCTAssertTrue(waitUntil(upTo: .seconds(20)) { idle.allSatisfy(self.isClosedByPeer) },
                      "still open: \(idle.filter { !self.isClosedByPeer($0) }.count) of 300")
        XCTAssertTrue(waitUntil(upTo: .seconds(5)) { self.openDescriptors(agent.pid) < 40 }, "\(openDescriptors(agent.pid)) descriptors")
        XCTAssertEqual(try client.get("/healthz").status, 200)
    }

    private func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// The server closed it: end of file (or a reset) without blocking.
    private func isClosedByPeer(_ connection: HTTPClient.Connection) -> Bool {
        var poller = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        let count = recv(connection.fd, &byte, 1, Int32(MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }
}
