import Foundation
import XCTest
@testable import Corral

/// Containment: nothing of a job escapes, in either tier (issue 3's scenarios).
class ContainmentTestCase: CorralTestCase {
    func requireCgroupTier() throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup,
                          "cgroup v2 containment unavailable here: \(runner.containment.note ?? "?")")
    }

    func processGroupRunner() throws -> Runner {
        var configuration = Runner.Configuration()
        configuration.containment = .processGroup
        configuration.reapOrphans = true
        return try Runner(configuration: configuration)
    }

    /// A double-forked daemon that has certainly left the group (it says so
    /// through a FIFO) before the leader exits.
    func daemonizingJob() throws -> JobSpec {
        let fifo = scratch.appendingPathComponent("escaped").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        return .shell("( setsid sh -c 'echo out > \(fifo); exec sleep 1000' & ); read line < \(fifo); echo forked")
    }

    /// Every process carrying the job's id, anywhere, alive.
    func survivors(_ result: JobResult) -> [ProcessEntry] {
        ProcessTable.processes(of: result.id, group: nil).filter { $0.state != "Z" }
    }
}

final class CgroupContainmentTests: ContainmentTestCase {
    /// 1. setsid escapee, cgroup tier.
    func testEscapeeIsKilledWithTheJobAndTheLeafRemoved() async throws {
        try requireCgroupTier()
        let result = try await runner.run(.shell("setsid sleep 1000 & sleep 1000", timeout: .seconds(1)))

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertEqual(result.containment, .cgroup)
        XCTAssertLessThan(result.timing.duration.seconds, 1 + 2 + 1)
        XCTAssertTrue(survivors(result).isEmpty, "left: \(survivors(result))")
        XCTAssertTrue(result.killed.contains { $0.command == "sleep" }, "\(result.killed)")
        assertLeafRemoved(result.id)
        XCTAssertNotNil(result.cpuTime)
        assertNothingLeft(result)
    }

    /// 3. Double-fork daemon, cgroup tier.
    func testDoubleForkedDaemonIsKilledWhenTheLeaderExits() async throws {
        try requireCgroupTier()
        let result = try await runner.run(daemonizingJob())

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.stdout.text, "forked\n")
        XCTAssertTrue(result.lingeringKilled)
        XCTAssertEqual(Set(result.killed.map(\.command)).isSubset(of: ["sh", "sleep"]), true, "\(result.killed)")
        XCTAssertFalse(result.killed.isEmpty, "the result lists what was killed")
        XCTAssertTrue(survivors(result).isEmpty, "left: \(survivors(result))")
        assertNothingLeft(result)
    }

    /// 4. A job forking hundreds of short- and long-lived processes while it is killed.
    func testForkingStormIsKilledCompletely() async throws {
        try requireCgroupTier()
        let storm = "i=0; while [ $i -lt 200 ]; do sleep 1000 & true & ( setsid sleep 1000 & ) ; i=$((i+1)); done; echo spawned; wait"
        let result = try await runner.run(.shell(storm, timeout: .milliseconds(300)))

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "left: \(survivors(result).prefix(5))")
        assertNothingLeft(result)
    }

    /// A job whose leader has exited, with a member that cannot die yet
    /// (frozen: SIGKILL waits until it is thawed) and a given gate.
    private func jobWithAFrozenMember(drainTimeout: Duration)
        throws -> (results: ResultBox, id: JobID, sleeper: Int32, freezer: Freezer) {
        let freezer = try Freezer()
        let gate = scratch.appendingPathComponent("gate").path
        XCTAssertEqual(mkfifo(gate, 0o600), 0)
        // The sleep holds none of the job's pipes: only the leaf says when it is gone.
        var spec = JobSpec.shell("sleep 1000 </dev/null >/dev/null 2>&1 & read line < \(gate)")
        spec.drainTimeout = drainTimeout
        let results = ResultBox()
        let handle = try runner.submit(spec, onCompletion: results.add)
        let sleeper = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))
        let leader = try XCTUnwrap(waitForProcess(of: handle.id, named: "sh"))
        try freezer.freeze(sleeper)
        try "go\n".write(toFile: gate, atomically: false, encoding: .utf8)
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(leader) == nil }, "the leader exited and was reaped")
        return (results, handle.id, sleeper, freezer)
    }

    /// The leaf is still populated when the leader exits: the result waits
    /// for it to empty, seen through cgroup.events, and comes as soon as it
    /// does — not when the drain timeout runs out.
    func testResultWaitsForTheLeafToEmptyAndComesWhenItDoes() throws {
        try requireCgroupTier()
        let job = try jobWithAFrozenMember(drainTimeout: .seconds(120))
        defer { job.freezer.remove() }
        XCTAssertTrue(job.results.all.isEmpty, "delivered while the leaf still held a process")

        try job.freezer.thaw()
        let result = try XCTUnwrap(job.results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertTrue(result.lingeringKilled)
        XCTAssertTrue(result.killed.contains { $0.pid == job.sleeper }, "\(result.killed)")
        XCTAssertLessThan(result.timing.duration.seconds, 60, "seen through cgroup.events, not the drain timeout")
        assertLeafRemoved(job.id)
        assertNothingLeft(result)
    }

    /// The leaf does not empty within the drain timeout: the result comes
    /// anyway, and the leaf is removed once it empties.
    func testLeafStillPopulatedAtDeliveryIsRemovedOnceItEmpties() throws {
        try requireCgroupTier()
        let job = try jobWithAFrozenMember(drainTimeout: .milliseconds(300))
        defer { job.freezer.remove() }
        let leaf = runner.containment.directory! + "/" + job.id.rawValue

        let result = try XCTUnwrap(job.results.wait(for: 1).first)
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(ProcessTable.entry(job.sleeper)?.state, "D", "still frozen when the result came")
        XCTAssertTrue(FileManager.default.fileExists(atPath: leaf), "kept while a process is in it")

        try job.freezer.thaw()
        XCTAssertTrue(ProcessTable.wait { !FileManager.default.fileExists(atPath: leaf) }, "removed once empty")
        assertNothingLeft(result)
    }

    /// 3 / leaveRunning: intended daemons move out of the leaf and are listed.
    func testLeaveRunningMovesTheDaemonOutAndListsIt() async throws {
        try requireCgroupTier()
        var spec = JobSpec.shell("setsid sleep 1000 >/dev/null 2>&1 & echo started")
        spec.lingering = .leaveRunning

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.leftRunning.count, 1, "\(result.leftRunning)")
        // Its name is a snapshot (sh, setsid or sleep, before or after its execs): the pid is what counts.
        let daemon = try XCTUnwrap(result.leftRunning.first)
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(daemon.pid)?.command == "sleep" })
        let cgroup = try String(contentsOfFile: "/proc/\(daemon.pid)/cgroup", encoding: .utf8)
        XCTAssertTrue(cgroup.contains("/corral/daemons"), cgroup)
        assertLeafRemoved(result.id)
        kill(daemon.pid, SIGKILL)
        assertNothingLeft(result)
    }

    /// 7. Five hundred jobs at once: every leaf created and removed.
    func testFiveHundredJobsLeaveNoLeaves() throws {
        try requireCgroupTier()
        let directory = runner.containment.directory!
        let results = ResultBox()
        for index in 0..<500 {
            var spec = JobSpec.shell(index % 2 == 0 ? "sleep 1000 & echo \(index)" : "setsid sleep 1000 & sleep 1000")
            spec.timeout = .seconds(1)
            try runner.submit(spec, onCompletion: results.add)
        }
        let all = results.wait(for: 500, upTo: .seconds(120))
        XCTAssertEqual(all.count, 500)
        XCTAssertTrue(all.allSatisfy { $0.containment == .cgroup })
        let leaves = { (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { !$0.contains(".") } ?? [] }
        XCTAssertTrue(ProcessTable.wait { leaves().isEmpty }, "leaves left: \(leaves().prefix(5))")
        for result in all { XCTAssertTrue(survivors(result).isEmpty) }
    }

    /// Stale leaves of a runner that died are emptied and removed at start:
    /// a directory whose lock nobody holds.
    func testStaleLeavesOfADeadRunnerAreCleanedAtStart() async throws {
        try requireCgroupTier()
        let root = URL(fileURLWithPath: runner.containment.directory!).deletingLastPathComponent().path
        // A runner's directory as a live one holds it: locked. Any runner
        // starting on this host (another test process too) cleans what is
        // unlocked, so the lock is held until the fixture is complete and
        // let go (the runner "dies") just before the next runner starts.
        // Made and locked under the root's lock, as a runner makes its own:
        // a cleaner never sees it unlocked before it is complete.
        let dead = root + "/runner-\(getpid())-dead\(UInt32.random(in: 1...UInt32.max))"
        let stale = dead + "/leftover"
        let rootLock = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(rootLock, 0)
        XCTAssertEqual(flock(rootLock, LOCK_EX), 0)
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        let lock = open(dead, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(lock, 0)
        XCTAssertEqual(flock(lock, LOCK_EX | LOCK_NB), 0, "a new directory is nobody's")
        close(rootLock)
        let orphan = try runner.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"]))) { _ in }
        let pid = try XCTUnwrap(waitForProcess(of: orphan.id, named: "sleep"))
        try String(pid).write(toFile: stale + "/cgroup.procs", atomically: false, encoding: .utf8)
        close(lock)

        let next = try Runner(configuration: configuration)
        await next.shutdown()

        XCTAssertFalse(FileManager.default.fileExists(atPath: dead), "stale directory removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: runner.containment.directory!), "the live runner's is kept")
        XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(pid) == nil || ProcessTable.entry(pid)?.state == "Z" },
                      "the process in the stale leaf was killed")
    }
}

extension CgroupContainmentTests {
    /// Regression: two runners of one process shared a cgroup directory, and
    /// one's shutdown killed the other's jobs.
    func testAnotherRunnersShutdownLeavesThisRunnersJobsAlone() async throws {
        try requireCgroupTier()
        let results = ResultBox()
        let handle = try runner.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
        let pid = try XCTUnwrap(waitForProcess(of: handle.id, named: "sleep"))

        let other = try Runner(configuration: configuration)
        XCTAssertNotEqual(other.containment.directory, runner.containment.directory)
        _ = try await other.run(.shell("echo hello"))
        await other.shutdown()

        XCTAssertEqual(ProcessTable.entry(pid)?.state.isLetter, true)
        XCTAssertNotEqual(ProcessTable.entry(pid)?.state, "Z", "still running")
        XCTAssertTrue(results.all.isEmpty)
        handle.cancel()
        XCTAssertEqual(results.wait(for: 1).first?.outcome, .cancelled)
    }
}

extension CgroupContainmentTests {
    /// A job may make child cgroups in its own leaf (a Corral running inside
    /// a Corral job does): their processes die with the job, and the leaf is
    /// removed depth first.
    func testChildCgroupsOfAJobAreKilledAndRemovedWithIt() async throws {
        try requireCgroupTier()
        let directory = runner.containment.directory!
        var spec = JobSpec.shell("""
            leaf="$RUNNER_DIR/$CORRAL_JOB_ID"; mkdir "$leaf/nested" "$leaf/nested/deeper"
            sh -c "echo 0 > '$leaf/nested/deeper/cgroup.procs'; exec sleep 1000" &
            sleep 1000
            """, timeout: .milliseconds(500))
        spec.environment = .inherit(updating: ["RUNNER_DIR": directory])

        let result = try await runner.run(spec)

        XCTAssertEqual(result.outcome, .timedOut)
        XCTAssertTrue(result.killed.contains { $0.command == "sleep" } || result.lingeringKilled)
        XCTAssertTrue(ProcessTable.wait { !FileManager.default.fileExists(atPath: directory + "/" + result.id.rawValue) },
                      "the leaf and its child cgroups are removed")
        assertNothingLeft(result)
    }
}

final class ProcessGroupContainmentTests: ContainmentTestCase {
    /// 2. setsid escapee, process-group tier: the sweep finds and kills it.
    ///
    /// The job is stopped only once the escapee is `sleep` in a session of
    /// its own (the test sees it so in /proc): stopped earlier, it could be
    /// caught between the fork, `setsid` and the exec of `sleep`, with
    /// another name or already dying of the group's signal. The stop is a
    /// cancel rather than a 1 s deadline, which a loaded machine can reach
    /// before the escapee has left; both take the same stop sequence.
    func testSweepKillsTheEscapee() async throws {
        let groups = try processGroupRunner()
        let results = ResultBox()
        let job = try groups.submit(.shell("setsid sleep 1000 & sleep 1000", timeout: .seconds(120)), onCompletion: results.add)
        defer { job.cancel() }  // if an assertion below throws first
        let leader = try XCTUnwrap(waitForProcess(of: job.id, named: "sh"))
        var escapee: ProcessEntry?
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(30)) {
            escapee = ProcessTable.processes(of: job.id, group: nil).first {
                $0.command == "sleep" && $0.group == $0.pid && $0.group != leader && $0.state != "Z"
            }
            return escapee != nil
        }, "no escapee in a session of its own: \(ProcessTable.processes(of: job.id, group: nil))")
        let stopped = ContinuousClock.now
        job.cancel()
        let result = try XCTUnwrap(results.wait(for: 1).first)
        await groups.shutdown()

        XCTAssertEqual(result.outcome, .cancelled)
        XCTAssertEqual(result.containment, .processGroup)
        XCTAssertLessThan((ContinuousClock.now - stopped).seconds, 2 + 1 + 1, "within the kill grace")
        XCTAssertEqual(result.escapeesKilled, 1)
        XCTAssertEqual(result.killed.map(\.pid), [try XCTUnwrap(escapee?.pid)])
        XCTAssertEqual(result.killed.map(\.command), ["sleep"])
        XCTAssertTrue(survivors(result).isEmpty, "left: \(survivors(result))")
        assertNothingLeft(result)
    }

    /// 3. Double-fork daemon, process-group tier.
    func testSweepKillsADoubleForkedDaemon() async throws {
        let groups = try processGroupRunner()
        var spec = try daemonizingJob()
        // Far above what the sweep takes even under a sanitizer on a loaded
        // machine, so reaching it means the sweep missed the daemon.
        spec.drainTimeout = .seconds(30)
        let result = try await groups.run(spec)
        await groups.shutdown()

        XCTAssertEqual(result.outcome, .exited(0))
        // Swept right after the leader's exit: the pipe it held closes with it.
        XCTAssertFalse(result.pipesForceClosed, "killed at once, not at the drain timeout")
        XCTAssertLessThan(result.timing.duration.seconds, 15, "before the drain timeout")
        XCTAssertGreaterThanOrEqual(result.escapeesKilled, 1)
        XCTAssertTrue(result.lingeringKilled)
        XCTAssertFalse(result.killed.isEmpty, "the result lists what was killed")
        XCTAssertTrue(Set(result.killed.map(\.command)).isSubset(of: ["sh", "sleep"]), "\(result.killed)")
        XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "left: \(survivors(result))")
        assertNothingLeft(result)
    }

    /// A sweep reuses the last /proc scan only while no process has been
    /// created since: an escapee forked after another job's sweep is found
    /// by the next sweep, however soon it comes.
    func testEscapeeForkedAfterAnotherJobsSweepIsStillFound() async throws {
        var configuration = Runner.Configuration()
        configuration.containment = .processGroup
        configuration.reapOrphans = true
        configuration.sweepSnapshotReuse = .seconds(3600)  // only a new process can end a scan's reuse
        let groups = try Runner(configuration: configuration)
        let gate = scratch.appendingPathComponent("gate").path
        XCTAssertEqual(mkfifo(gate, 0o600), 0)
        let results = ResultBox()
        let quiet = try groups.submit(.shell("sleep 1000"), onCompletion: results.add)
        let forker = try groups.submit(.shell("read line < \(gate); setsid sleep 1000 & sleep 1000"),
                                       onCompletion: results.add)
        XCTAssertNotNil(waitForProcess(of: quiet.id, named: "sleep"))
        XCTAssertNotNil(waitForProcess(of: forker.id, named: "sh"))

        quiet.cancel()  // its sweeps scan /proc
        XCTAssertEqual(results.wait(for: 1).first?.id, quiet.id)
        try "go\n".write(toFile: gate, atomically: false, encoding: .utf8)
        let leader = try XCTUnwrap(waitForProcess(of: forker.id, named: "sh"))
        XCTAssertTrue(ProcessTable.wait {
            ProcessTable.processes(of: forker.id, group: nil).contains { $0.group != leader && $0.state != "Z" }
        }, "the escapee has left the job's group")
        forker.cancel()

        let result = try XCTUnwrap(results.wait(for: 2).first { $0.id == forker.id })
        await groups.shutdown()
        XCTAssertEqual(result.outcome, .cancelled)
        XCTAssertEqual(result.escapeesKilled, 1, "found by a new scan, not the one before it was forked")
        XCTAssertTrue(ProcessTable.wait { self.survivors(result).isEmpty }, "left: \(survivors(result))")
        assertNothingLeft(result)
    }

    /// 6. cgroup tier asked for where it cannot be had: a clear note, and jobs still run.
    func testUnusableCgroupDirectoryFallsBackWithAClearNote() async throws {
        var configuration = Runner.Configuration()
        configuration.containment = .cgroup(under: scratch.path)  // a plain directory, not cgroupfs
        let fallback = try Runner(configuration: configuration)
        XCTAssertEqual(fallback.containment.tier, .processGroup)
        let note = try XCTUnwrap(fallback.containment.note)
        XCTAssertTrue(note.contains(scratch.path) && note.contains("not a cgroup v2 directory"), note)
        let result = try await fallback.run(.shell("echo still runs"))
        await fallback.shutdown()
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(result.containment, .processGroup)

        configuration.containment = .cgroup(under: "/proc/corral-nowhere")
        let missing = try Runner(configuration: configuration)
        XCTAssertEqual(missing.containment.tier, .processGroup)
        XCTAssertTrue(missing.containment.note?.contains("/proc/corral-nowhere") ?? false)
        await missing.shutdown()
    }
}

extension CgroupContainmentTests {
    /// The job's emptied leaf is removed on the inspector right after its
    /// result goes out (no result waits for an rmdir): waited for.
    func assertLeafRemoved(_ id: JobID, file: StaticString = #filePath, line: UInt = #line) {
        let leaf = runner.containment.directory! + "/" + id.rawValue
        XCTAssertTrue(ProcessTable.wait { !FileManager.default.fileExists(atPath: leaf) }, "leaf removed", file: file, line: line)
    }
}
