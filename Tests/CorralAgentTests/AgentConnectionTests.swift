import CorralTestSupport
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

    /// Issue 13's flood: 5,000 idle connections against an agent with a
    /// 4,096-descriptor limit (the setting that once made new clients hang
    /// and jobs fail with "Too many open files"). The API answers, a job
    /// running through it keeps its output and one its deadline, new jobs
    /// get their pipes, and every idle connection is closed.
    func testFiveThousandIdleConnectionsUnderALoweredDescriptorLimit() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit (util-linux)")
        let connections = 5000
        // The test holds every client end: its own limit must allow them.
        var limits = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits), 0)
        let needed = rlim_t(connections + 1000)
        if limits.rlim_cur < needed {
            try XCTSkipUnless(limits.rlim_max >= needed, "the test needs \(needed) descriptors; its hard limit is \(limits.rlim_max)")
            let saved = limits
            limits.rlim_cur = needed
            XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limits), 0)
            addTeardownBlock {
                var restore = saved
                setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &restore)
            }
        }
        let agent = try launch("/usr/bin/prlimit", ["--nofile=4096:4096", "--", AgentTestCase.binary, "agent",
                                                    "--listen", "127.0.0.1:0", "--data-dir", dataDirectory,
                                                    "--idle-timeout", "5s", "--flush-interval", "50ms"])
        XCTAssertTrue(agent.waitUntilListening(), agent.output)
        let client = agent.client

        // Running through the flood: one printing for a few seconds, one
        // with a 2 s deadline.
        let printer = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"shell":"for i in $(seq 1 40); do echo line $i; sleep 0.1; done","timeout":"120s"}"#).json["id"] as? String)
        let sleeper = try XCTUnwrap(try client.post("/v1/jobs", json: #"{"argv":["sleep","60"],"timeout":"2s","kill_after":"1s"}"#).json["id"] as? String)
        XCTAssertTrue(waitForState(client, printer, "running"))

        var idle: [HTTPClient.Connection] = []
        idle.reserveCapacity(connections)
        defer { idle.forEach { $0.close() } }
        // In batches, each taken by the agent (accepted) before the next:
        // beyond a full accept queue the kernel completes a client's
        // connect (SYN cookies) without the server ever seeing it, and such
        // a connection is never closed because it never existed there.
        let flood = ContinuousClock.now
        for _ in 0..<(connections / 500) {
            for _ in 0..<500 { idle.append(try HTTPClient.Connection(port: agent.port, timeout: .seconds(5))) }
            XCTAssertTrue(waitUntil(upTo: .seconds(60)) { self.notYetAccepted(port: agent.port) == 0 },
                          "\(notYetAccepted(port: agent.port)) connections wait in the accept queue")
        }
        let opened = ContinuousClock.now - flood

        // The API answers, and a new job gets its pipes.
        let asked = ContinuousClock.now
        XCTAssertEqual(try client.get("/healthz").status, 200)
        let answeredIn = ContinuousClock.now - asked
        let created = try client.post("/v1/jobs", json: #"{"argv":["echo","still serving"]}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let job = try waitForFinal(client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "still serving\n", "\(job)")
        print("\(connections) idle connections opened in \(opened); /healthz answered \(answeredIn) after; agent holds \(openDescriptors(agent.pid)) descriptors")
        XCTAssertLessThan(answeredIn, .seconds(10), "the API did not answer during the flood")
        XCTAssertLessThan(openDescriptors(agent.pid), 4096 - 64, "the agent is at its descriptor limit")

        // The jobs that ran through it are unaffected.
        let printed = try waitForFinal(client, printer)
        XCTAssertEqual(printed["state"] as? String, "exited", "\(printed)")
        XCTAssertEqual((printed["result"] as? [String: Any])?["stdout"] as? String,
                       (1...40).map { "line \($0)\n" }.joined(), "\(printed)")
        let slept = try waitForFinal(client, sleeper)
        XCTAssertEqual(slept["state"] as? String, "timed_out", "\(slept)")
        XCTAssertLessThan((slept["result"] as? [String: Any])?["duration_s"] as? Double ?? 99, 2 + 3, "\(slept)")
        XCTAssertFalse(agent.output.contains("Too many open files"), agent.output)

        // Every idle connection is closed by the agent: the idlest when the
        // cap was reached, the rest after the 5 s idle timeout.
        XCTAssertTrue(waitUntil(upTo: .seconds(60)) { idle.allSatisfy(self.isClosedByPeer) },
                      "still open: \(idle.filter { !self.isClosedByPeer($0) }.count) of \(connections)")
        XCTAssertTrue(waitUntil(upTo: .seconds(10)) { self.openDescriptors(agent.pid) < 64 }, "\(openDescriptors(agent.pid)) descriptors")
        XCTAssertEqual(try client.get("/healthz").status, 200)
    }

    /// Connections to `port` the kernel holds for the agent that it has
    /// not accepted yet: established (or half-open) server-side entries of
    /// /proc/net/tcp without an inode. (Those the agent closed are in
    /// FIN_WAIT, not counted.)
    private func notYetAccepted(port: UInt16) -> Int {
        let text = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").dropFirst().count { line in
            let fields = line.split(separator: " ")
            return fields.count > 9 && fields[1].split(separator: ":").last.flatMap { UInt16($0, radix: 16) } == port
                && (fields[3] == "01" || fields[3] == "03") && fields[9] == "0"  // established or SYN_RECV
        }
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
