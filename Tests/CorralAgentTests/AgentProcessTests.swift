import CorralTestSupport
import Foundation
import XCTest

/// The agent as a process among others: one agent per data directory,
/// SIGHUP, a closed stdout, and descriptors no job inherits.
final class AgentProcessTests: AgentTestCase {
    func testSecondAgentOnTheSameDataDirectoryIsRefusedAndTheFirstRunsOn() async throws {
        let first = try startAgent()
        let client = first.client
        let submitted = try client.post("/v1/jobs", json: #"{"shell":"sleep 1.5; echo done; exit 3"}"#)
        XCTAssertEqual(submitted.status, 201, submitted.text)
        let id = try XCTUnwrap(submitted.json["id"] as? String)
        XCTAssertTrue(waitForState(client, id, "running"))

        let second = try await corral(["agent", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory])
        guard case .exited(125) = second.outcome else { return XCTFail("\(second.outcome) \(second.stderr.text)") }
        XCTAssertTrue(second.stderr.text.contains("is in use by another corral agent (pid \(first.pid))"), second.stderr.text)
        XCTAssertFalse(second.stdout.text.contains("listening"), second.stdout.text)

        // The first agent's job was not taken for lost: it ends as it would have.
        let job = try waitForFinal(client, id)
        XCTAssertEqual(job["state"] as? String, "exited", "\(job)")
        XCTAssertEqual(job["exit_code"] as? Int, 3, "\(job)")
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "done\n", "\(job)")
        XCTAssertEqual(try client.get("/healthz").status, 200)

        // Released with the first agent: the next one starts.
        first.terminate()
        XCTAssertNotNil(first.waitForExit())
        let next = try startAgent()
        XCTAssertEqual(try next.client.get("/v1/jobs/\(id)").json["state"] as? String, "exited")
    }

    /// A port another agent listens on: exit 125 saying which address and
    /// why, in words (NIO's own text named its bind function).
    func testAPortInUseIsSaidPlainly() async throws {
        let first = try startAgent()
        let other = scratch.appendingPathComponent("other").path
        let second = try await corral(["agent", "--listen", "127.0.0.1:\(first.port)", "--data-dir", other])
        guard case .exited(125) = second.outcome else { return XCTFail("\(second.outcome) \(second.stderr.text)") }
        XCTAssertTrue(second.stderr.text.contains("cannot listen on 127.0.0.1:\(first.port): Address already in use"), second.stderr.text)
        XCTAssertFalse(second.stderr.text.contains("descriptor:"), second.stderr.text)
        XCTAssertEqual(try first.client.get("/healthz").status, 200)
    }

    func testSighupIsLoggedAndIgnored() throws {
        let agent = try startAgent()
        for _ in 0..<2 {
            XCTAssertEqual(kill(agent.pid, SIGHUP), 0)
            XCTAssertTrue(waitUntil(upTo: .seconds(10)) { agent.output.contains("SIGHUP ignored") }, agent.output)
        }
        usleep(200_000)
        XCTAssertFalse(agent.hasExited, agent.output)
        XCTAssertEqual(try agent.client.get("/healthz").status, 200)
        let created = try agent.client.post("/v1/jobs", json: #"{"argv":["echo","after hangup"]}"#)
        let job = try waitForFinal(agent.client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual(job["state"] as? String, "exited")
        // SIGTERM still stops it gracefully.
        agent.terminate()
        guard case .exited(0)? = agent.waitForExit()?.outcome else { return XCTFail("\(String(describing: agent.waitForExit()?.outcome))") }
    }

    func testStartsAndAnswersWithStdoutClosed() throws {
        let port = try freePort()
        let agent = try launch("/bin/sh", ["-c", #"exec "$0" "$@" >&-"#, AgentTestCase.binary, "agent",
                                           "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory])
        let client = HTTPClient(port: port)
        XCTAssertTrue(waitUntil { (try? client.get("/healthz").status) == 200 }, "not answering: \(agent.output)")
        let created = try client.post("/v1/jobs", json: #"{"argv":["echo","no stdout"]}"#)
        XCTAssertEqual(created.status, 201, created.text)
        let job = try waitForFinal(client, try XCTUnwrap(created.json["id"] as? String))
        XCTAssertEqual((job["result"] as? [String: Any])?["stdout"] as? String, "no stdout\n")
        // Descriptor 1 is /dev/null, not the journal or a socket.
        let one = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(agent.pid)/fd/1")
        XCTAssertEqual(one, "/dev/null")
        XCTAssertFalse(agent.hasExited)
    }

    /// SwiftNIO does not open its listening socket with SOCK_CLOEXEC; the
    /// agent marks it. Accepted connections rely on the spawn path, which
    /// closes every descriptor above 2 in the child: a job sees none.
    func testListeningSocketAndLockAreCloseOnExec() throws {
        let agent = try startAgent()
        var sockets = 0, locks = 0
        let listening = try listeningSocketInodes(port: agent.port)
        XCTAssertFalse(listening.isEmpty)
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd")
        for fd in fds {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(agent.pid)/fd/\(fd)") else { continue }
            let isSocket = listening.contains(target)
            let isLock = target.hasSuffix("/agent.lock")
            guard isSocket || isLock else { continue }
            let info = try String(contentsOfFile: "/proc/\(agent.pid)/fdinfo/\(fd)", encoding: .utf8)
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags:") }
                .flatMap { Int($0.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8) }
            XCTAssertNotNil(flags, info)
            XCTAssertNotEqual((flags ?? 0) & Int(O_CLOEXEC), 0, "fd \(fd) (\(target)) is not close-on-exec: \(info)")
            if isSocket { sockets += 1 } else { locks += 1 }
        }
        XCTAssertGreaterThan(sockets, 0, "no socket found among the agent's descriptors: \(fds)")
        XCTAssertEqual(locks, 1)

        // And a job sees none of them, nor the connection held open meanwhile.
        let held = try HTTPClient.Connection(port: agent.port, timeout: .seconds(5))
        defer { held.close() }
        let created = try agent.client.post("/v1/jobs", json: #"{"shell":"ls -l /proc/self/fd/"}"#)
        let job = try waitForFinal(agent.client, try XCTUnwrap(created.json["id"] as? String))
        let listing = (job["result"] as? [String: Any])?["stdout"] as? String ?? ""
        XCTAssertFalse(listing.contains("socket:") || listing.contains("agent.lock") || listing.contains("journal"), listing)
    }

    /// `socket:[inode]` of the sockets listening on a port (/proc/net/tcp, tcp6).
    private func listeningSocketInodes(port: UInt16) throws -> Set<String> {
        var found: Set<String> = []
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A",
                      fields[1].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) }) == port else { continue }
                found.insert("socket:[\(fields[9])]")
            }
        }
        return found
    }
}
