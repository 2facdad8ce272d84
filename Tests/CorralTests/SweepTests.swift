import Foundation
import XCTest
import CorralTestSupport
@testable import Corral

/// The marker sweep after every job (issue 12): what carries a job's id
/// outside its group or leaf is killed and reported, pass after pass until
/// a scan finds nothing new, also through a nested Corral.
final class EscapeeSweepTests: ContainmentTestCase {
    /// SIGKILL to every live process carrying the job's id, until none is
    /// (bounded): so a failing test leaks nothing.
    private func killAll(_ id: JobID) {
        _ = ProcessTable.wait(upTo: .seconds(10)) {
            let left = ProcessTable.processes(of: id, group: nil).filter { $0.state != "Z" }
            left.forEach { kill($0.pid, SIGKILL) }
            return left.isEmpty
        }
    }

    /// A job that exits 0 after its daemon has certainly left the group
    /// (it says so through a FIFO): setsid, a double fork, bash's `set -m`.
    func testDaemonsOfAJobThatExitsZeroAreKilledAndReported() async throws {
        let groups = try processGroupRunner()
        let fifo = scratch.appendingPathComponent("up").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let daemon = "sh -c 'echo up > \(fifo); exec sleep 1000' >/dev/null 2>&1"
        let jobs: [(String, JobSpec)] = [
            ("setsid", .shell("setsid \(daemon) & read line < \(fifo); exit 0")),
            ("double fork", .shell("( setsid \(daemon) & ) ; read line < \(fifo); exit 0")),
            ("set -m", JobSpec(.executable("/bin/bash", arguments: ["-c", "set -m; \(daemon) & read line < \(fifo); exit 0"]))),
        ]
        for (name, var spec) in jobs {
            // A drain timeout far above what the sweep takes even under a
            // sanitizer on a loaded machine (the default, 1 s, is not).
            spec.drainTimeout = .seconds(30)
            let result = try await groups.run(spec)
            defer { killAll(result.id) }
            XCTAssertEqual(result.outcome, .exited(0), name)
            XCTAssertEqual(result.containment, .processGroup)
            XCTAssertTrue(result.lingeringKilled, name)
            XCTAssertGreaterThanOrEqual(result.escapeesKilled, 1, name)
            XCTAssertFalse(result.killed.isEmpty, "\(name): the result names what was killed")
            XCTAssertFalse(result.pipesForceClosed, name)
            XCTAssertLessThan(result.timing.duration.seconds, 15, "\(name): well within the drain timeout")
            XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "\(name) left: \(survivors(result))")
        }
        await groups.shutdown()
    }

    /// An escapee that forks all the time: one snapshot cannot catch it,
    /// repeated passes must. 20 runs, nothing left in any.
    func testForkingEscapeeLeavesNothingIn20Runs() async throws {
        let groups = try processGroupRunner()
        var leftovers: [Int] = []
        var passes: [Int] = []
        for _ in 0..<20 {
            let result = try await groups.run(.shell(
                "setsid sh -c 'while :; do sleep 1000 & done' >/dev/null 2>&1 & sleep 0.2; exit 0"))
            XCTAssertEqual(result.outcome, .exited(0))
            passes.append(result.escapeesKilled)
            let clean = ProcessTable.wait(upTo: .seconds(5)) { self.survivors(result).isEmpty }
            leftovers.append(clean ? 0 : survivors(result).count)
            killAll(result.id)
        }
        await groups.shutdown()
        print("forking escapee: killed per run \(passes), left per run \(leftovers)")
        XCTAssertEqual(leftovers, Array(repeating: 0, count: 20))
    }

    /// The batch order behind the test above: the root of a forking tree
    /// comes first even when the pid counter has wrapped and its children
    /// have lower pids (so /proc lists them first), and a batch limited to
    /// `pidfdLimit` findings always includes it.
    func testTheRootOfAForkingTreeIsSweptFirstWhateverItsPID() {
        typealias C = ProcessSnapshot.Candidate
        let children = (100..<500).map { C(pid: pid_t($0), parent: 32000, group: 32000) }
        let grandchild = C(pid: 50, parent: 100, group: 32000)
        let root = C(pid: 32000, parent: 1, group: 32000)
        let other = C(pid: 20, parent: 7, group: 20)  // a second escaped tree's root
        let ordered = rootsFirst([grandchild] + children + [root, other])
        XCTAssertEqual(Set(ordered.prefix(2).map(\.pid)), [32000, 20])
        XCTAssertEqual(ordered.count, children.count + 3)
        XCTAssertEqual(Set(ordered.map(\.pid)).count, ordered.count)
        XCTAssertLessThan(2, EscapeeSweeper.pidfdLimit)
    }

    /// A job running `corral` itself: the inner runner overwrites
    /// CORRAL_JOB_ID, the list keeps the outer id, so the outer sweep still
    /// finds the inner job's escapee when the inner corral is SIGKILLed.
    func testNestedCorralLeavesNothingAfterTheOuterDeadline() async throws {
        let corral = EndToEnd.corralBinary
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: corral), "\(corral) not built")
        let groups = try processGroupRunner()
        var spec = JobSpec.shell(
            "\(corral) run --containment process-group --shell -- 'setsid sleep 1000 >/dev/null 2>&1 & sleep 1000'",
            timeout: .seconds(3))
        spec.stopSignal = .kill  // the inner corral gets no chance to clean up
        let results = ResultBox()
        let handle = try groups.submit(spec, onCompletion: results.add)
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(10)) {
            ProcessTable.processes(of: handle.id, group: nil).filter { $0.command == "sleep" }.count >= 2
        }, "the inner job and its escapee run, carrying the outer id")
        let inner = ProcessTable.processes(of: handle.id, group: nil).filter { $0.command == "sleep" }
        XCTAssertTrue(inner.allSatisfy { !ProcessTable.carriesOnly($0.pid, jobID: handle.id) },
                      "their CORRAL_JOB_ID is the inner job's")

        let result = try XCTUnwrap(results.wait(for: 1).first)
        await groups.shutdown()
        defer { killAll(result.id) }
        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertLessThan(result.timing.duration.seconds, 3 + 1 + 1)
        XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "left: \(survivors(result))")
        for process in inner {
            XCTAssertTrue(ProcessTable.entry(process.pid) == nil || ProcessTable.entry(process.pid)?.state == "Z",
                          "inner \(process) is dead")
        }
    }

    /// Cgroup tier: a root job that moves itself out of its leaf (and out
    /// of its group) is still killed at its deadline, found by its id.
    func testRootJobLeavingItsLeafIsStillKilledAtItsDeadline() async throws {
        try requireCgroupTier()
        try XCTSkipUnless(getuid() == 0, "needs root to write another cgroup's cgroup.procs")
        let directory = try XCTUnwrap(runner.containment.directory)
        // The runner's own cgroup: outside every job leaf.
        let outside = URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent().path
        let fifo = scratch.appendingPathComponent("moved").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let spec = JobSpec.shell("""
            sh -c 'echo $$ > \(outside)/cgroup.procs; exec setsid sh -c "echo moved > \(fifo); exec sleep 1000"' >/dev/null 2>&1 &
            read line < \(fifo); sleep 1000
            """, timeout: .seconds(2))
        let results = ResultBox()
        let handle = try runner.submit(spec, onCompletion: results.add)
        // The sleep that has left the leaf (the leader's own sleep has not).
        var escapee: Int32?
        _ = ProcessTable.wait {
            escapee = ProcessTable.processes(of: handle.id, group: nil).first { process in
                process.command == "sleep" && !((try? String(contentsOfFile: "/proc/\(process.pid)/cgroup", encoding: .utf8))?
                    .contains(handle.id.rawValue) ?? true)
            }?.pid
            return escapee != nil
        }
        if escapee == nil { handle.cancel() }
        try XCTSkipIf(escapee == nil, "no process could leave its leaf here")

        let result = try XCTUnwrap(results.wait(for: 1).first)
        defer { killAll(result.id) }
        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertEqual(result.containment, .cgroup)
        XCTAssertTrue(result.killed.contains { $0.pid == escapee }, "\(result.killed)")
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(escapee!) == nil || ProcessTable.entry(escapee!)?.state == "Z" },
                      "the escapee is dead")
        assertNothingLeft(result)
    }

    /// The same escapee, from a job that exits 0: killed right after it.
    func testRootJobLeavingItsLeafIsKilledWhenTheJobExits() async throws {
        try requireCgroupTier()
        try XCTSkipUnless(getuid() == 0, "needs root to write another cgroup's cgroup.procs")
        let directory = try XCTUnwrap(runner.containment.directory)
        let outside = URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent().path
        let fifo = scratch.appendingPathComponent("moved").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let result = try await runner.run(.shell("""
            sh -c 'echo $$ > \(outside)/cgroup.procs; exec setsid sh -c "echo moved > \(fifo); exec sleep 1000"' >/dev/null 2>&1 &
            read line < \(fifo); exit 0
            """))
        defer { killAll(result.id) }
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertGreaterThanOrEqual(result.escapeesKilled, 1, "\(result)")
        XCTAssertTrue(result.lingeringKilled)
        XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "left: \(survivors(result))")
    }
}

extension EscapeeSweepTests {
    /// `.leaveRunning` under churn: the leader exits while its daemon is
    /// still forking 2,000 workers. None is killed, and the result counts
    /// every one (and names the first 1,000), within the drain timeout.
    func testLeaveRunningCountsTwoThousandWorkersExactlyAndKillsNone() async throws {
        let done = scratch.appendingPathComponent("done").path
        var spec = JobSpec.shell("""
            setsid sh -c 'i=0; while [ $i -lt 2000 ]; do sleep 1000 & i=$((i+1)); done; echo > \(done); exec sleep 1000' \
                >/dev/null 2>&1 </dev/null & exit 0
            """)
        spec.lingering = .leaveRunning
        spec.drainTimeout = .seconds(60)

        let result = try await runner.run(spec)
        defer { removeKept(result) }
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertTrue(FileManager.default.fileExists(atPath: done), "the count waited for the forking to stop")
        let alive = ProcessTable.processes(of: result.id, group: nil).filter { $0.state != "Z" }
        XCTAssertEqual(alive.count, 2001, "the daemon and its 2,000 workers, none killed")
        XCTAssertEqual(result.leftRunningCount, 2001)
        XCTAssertEqual(result.leftRunning.count, 1000, "a bounded list")
        XCTAssertEqual(Set(result.leftRunning.map(\.pid)).subtracting(alive.map(\.pid)), [], "each named one is alive")
        XCTAssertFalse(result.lingeringKilled)
        XCTAssertTrue(result.killed.isEmpty)
        XCTAssertLessThan(result.timing.duration.seconds, 60 + 1)
        print("leave-running under churn [\(result.containment)]: \(result.leftRunningCount) counted in \(result.timing.duration)")
    }
}

extension EscapeeSweepTests {
    /// The other side of "still forking": a daemon that keeps a CPU busy
    /// without forking is counted once it has had the CPU for a while, not
    /// after the drain timeout.
    func testLeaveRunningCountsABusyDaemonWithoutWaitingForTheDrainTimeout() async throws {
        var spec = JobSpec.shell("setsid sh -c 'while :; do :; done' >/dev/null 2>&1 </dev/null & exit 0")
        spec.lingering = .leaveRunning
        spec.drainTimeout = .seconds(60)

        let result = try await runner.run(spec)
        defer { removeKept(result) }
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.leftRunningCount, 1, "\(result.leftRunning)")
        XCTAssertTrue(result.killed.isEmpty)
        XCTAssertLessThan(result.timing.duration.seconds, 30, "counted long before the 60 s drain timeout")
    }
}

extension EscapeeSweepTests {
    /// Kills what a `.leaveRunning` job left and removes its daemon cgroup.
    func removeKept(_ result: JobResult) {
        killAll(result.id)
        if let directory = runner.containment.directory {
            let daemons = URL(fileURLWithPath: directory).deletingLastPathComponent().path + "/daemons/" + result.id.rawValue
            _ = ProcessTable.wait { rmdir(daemons) == 0 || errno == ENOENT }
        }
    }
}

extension ProcessTable {
    /// Whether the process's CORRAL_JOB_ID itself is this id.
    static func carriesOnly(_ pid: Int32, jobID: JobID) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        let marker = Array("CORRAL_JOB_ID=\(jobID.rawValue)".utf8)
        return data.split(separator: 0).contains { Array($0) == marker }
    }
}
