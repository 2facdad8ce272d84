import CorralTestSupport
import Foundation
import XCTest

/// Issue 13, item 6: nothing heavy on the runner's loop. A job ending with
/// 100 MiB of kept output must not hold up other jobs' deadlines (it once
/// stalled every timer 2.8 s: its result was encoded on the loop thread).
final class AgentDeadlineLoadTests: AgentTestCase {
    /// Overshoot (result `duration_s` minus the 1 s deadline) this test
    /// allows, for a debug build on a shared 2-core machine: the median
    /// under 1 s, every one under 3 s. When the result was encoded on the
    /// loop, the median was 2.9 s. On this machine, under load, the debug
    /// agent's first jobs already overshoot up to ~1.6 s without any big
    /// output (they time out while the rest are still being spawned), so
    /// a tighter bound here would measure the machine. The issue's figure,
    /// 100 ms, is measured on the release build by `scripts/bench-agent`
    /// (docs/benchmarks-agent.md).
    static let medianBound = 1.0
    static let overshootBound = 3.0

    func testHundredMiBResultEndingDoesNotDelayOtherDeadlines() throws {
        let agent = try startAgent(["--max-output", "100MiB", "--max-jobs", "256"])
        let client = HTTPClient(port: agent.port, timeout: .seconds(120))
        let written = scratch.appendingPathComponent("written").path
        let gate = scratch.appendingPathComponent("gate").path
        XCTAssertEqual(mkfifo(gate, 0o600), 0)

        // 100 MiB of stdout, all kept; then it waits at the gate, so that
        // its end (the result with 100 MiB) falls among the deadlines.
        let big = try XCTUnwrap(try client.post("/v1/jobs", json: """
            {"shell":"head -c 104857600 /dev/zero | tr '\\\\0' x; : > '\(written)'; read line < '\(gate)'","timeout":"10m"}
            """).json["id"] as? String, "the big job was not accepted")
        XCTAssertTrue(waitUntil(upTo: .seconds(120)) { FileManager.default.fileExists(atPath: written) },
                      "the big job did not write its 100 MiB")

        // 200 jobs with a 1 s deadline; the big job ends halfway through
        // submitting them, while the first ones' deadlines are pending.
        var ids: [String] = []
        for index in 0..<200 {
            if index == 100 { try openGate(gate) }
            let created = try client.post("/v1/jobs", json: #"{"argv":["sleep","30"],"timeout":"1s","kill_after":"1s"}"#)
            XCTAssertEqual(created.status, 201, created.text)
            ids.append(try XCTUnwrap(created.json["id"] as? String))
        }

        // Final is read from the list (summaries only): the poll never
        // encodes the 100 MiB result.
        XCTAssertTrue(waitUntil(upTo: .seconds(120)) { self.listed(client, "exited").contains(big) },
                      "the 100 MiB job is not final: \(String(describing: try? client.get("/v1/jobs?limit=1000").text.prefix(2000)))")
        XCTAssertTrue(waitUntil(upTo: .seconds(60)) { self.listed(client, "timed_out").count == 200 },
                      "\(listed(client, "timed_out").count) of 200 timed out")

        var overshoots: [Double] = []
        for id in ids {
            let job = try client.get("/v1/jobs/\(id)").json
            XCTAssertEqual(job["state"] as? String, "timed_out", "\(job)")
            let result = try XCTUnwrap(job["result"] as? [String: Any], "\(job)")
            overshoots.append(try XCTUnwrap(result["duration_s"] as? Double, "\(result)") - 1.0)
        }
        overshoots.sort()
        let p50 = overshoots[overshoots.count / 2], p99 = overshoots[overshoots.count * 99 / 100], worst = overshoots.last!
        print(String(format: "200 jobs with 1 s deadlines while a 100 MiB result ends: overshoot p50 %.0f ms, p99 %.0f ms, max %.0f ms (bounds: p50 %.0f ms, max %.0f ms; debug build)",
                     p50 * 1000, p99 * 1000, worst * 1000, AgentDeadlineLoadTests.medianBound * 1000,
                     AgentDeadlineLoadTests.overshootBound * 1000))
        XCTAssertLessThan(p50, AgentDeadlineLoadTests.medianBound, "overshoots: \(overshoots)")
        XCTAssertLessThan(worst, AgentDeadlineLoadTests.overshootBound, "overshoots: \(overshoots)")

        // The result is whole, and reads back through the API.
        let job = try client.get("/v1/jobs/\(big)")
        XCTAssertEqual(job.status, 200)
        let result = try XCTUnwrap(job.json["result"] as? [String: Any])
        XCTAssertEqual(result["stdout_dropped"] as? Int, 0)
        XCTAssertEqual((result["stdout"] as? String)?.utf8.count, 100 << 20)
    }

    /// Lets the job waiting at `gate` go on.
    private func openGate(_ gate: String) throws {
        // Non-blocking: ENXIO until the job has opened its end.
        var fd: Int32 = -1
        _ = waitUntil(upTo: .seconds(30)) {
            fd = open(gate, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            return fd >= 0
        }
        guard fd >= 0 else { throw HTTPClient.Failure(description: "open \(gate): errno \(errno)") }
        defer { close(fd) }
        XCTAssertEqual(write(fd, "go\n", 3), 3)
    }

    /// Ids of the jobs in `state`, from the list (which reads no results).
    private func listed(_ client: HTTPClient, _ state: String) -> [String] {
        let page = (try? client.get("/v1/jobs?state=\(state)&limit=1000").json["jobs"] as? [[String: Any]]) ?? []
        return page.compactMap { $0["id"] as? String }
    }
}
