import Foundation
import XCTest
import CorralTestSupport
@testable import Corral
#if canImport(Glibc)
import Glibc
#endif

/// Host-scale /proc and cgroupfs work — the escapee sweep's scan, the
/// search for pipe holders, listings, cpu.stat, removing leaves — runs on
/// the runner's inspector thread, so a busy host slows diagnostics, never
/// a deadline. (The debug-build `assertNotOnLoopThread` in each of those
/// functions fails every test reaching one that runs on the loop.)
final class InspectorTests: CorralTestCase {
    /// About 2,000 unrelated sleeping processes (no job marker) make every
    /// scan of /proc long. Jobs whose pipes are force-closed while held
    /// (each a search of every descriptor on the host), and jobs that leave
    /// escapees (sweeps), finish around another job's 2 s deadline: that
    /// deadline still holds within a generous bound.
    func testScansOfACrowdedHostDelayNoDeadline() async throws {
        let crowd = try Crowd(count: 2000)
        defer { crowd.stop() }
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(120)) { crowd.started >= 2000 }, "crowd: \(crowd.started)")

        var configuration = Runner.Configuration()
        configuration.containment = .processGroup
        configuration.reapOrphans = true
        configuration.maxJobsInFlight = 200
        let groups = try Runner(configuration: configuration)

        // Kept running and holding their stdout: force-closed at the drain
        // timeout, each a search for pipe holders on the whole host.
        var holding = JobSpec.shell("setsid sleep 1000 & echo started")
        holding.lingering = .leaveRunning
        holding.drainTimeout = .milliseconds(1800)
        // Leaving an escapee that the sweep finds and kills (the result waits
        // for the sweep, bounded by the drain timeout: generous here, as
        // scans of this host take a while).
        var escaping = JobSpec.shell("setsid sleep 1000 & sleep 1000", timeout: .milliseconds(1800))
        escaping.drainTimeout = .seconds(10)
        var victim = JobSpec(.executable("sleep", arguments: ["30"]))
        victim.timeout = .seconds(2)

        let (keep, escape, deadline) = (holding, escaping, victim)
        async let victimResult = groups.run(deadline)
        let results: [(holding: Bool, result: JobResult)] = try await withThrowingTaskGroup(
            of: (Bool, JobResult).self) { group in
            for _ in 0..<30 {
                group.addTask { (true, try await groups.run(keep)) }
                group.addTask { (false, try await groups.run(escape)) }
            }
            var all: [(Bool, JobResult)] = []
            for try await result in group { all.append(result) }
            return all
        }
        let quiet = try await victimResult
        await groups.shutdown()
        crowd.stop()

        XCTAssertEqual(quiet.outcome, .timedOut)
        let killedAfter = try XCTUnwrap(quiet.timing.leaderExited) - XCTUnwrap(quiet.timing.spawned)
        XCTAssertLessThan(killedAfter, .seconds(2) + .seconds(1), "the deadline held: \(quiet.timing)")
        print("crowded host: the 2 s job's leader was dead \(killedAfter.seconds) s after its spawn")

        let held = results.filter(\.holding).map(\.result)
        let escaped = results.filter { !$0.holding }.map(\.result)
        XCTAssertEqual(held.count, 30)
        for result in held {
            XCTAssertTrue(result.pipesForceClosed)
            XCTAssertEqual(result.leftRunningCount, 1, "\(result.leftRunning)")
            XCTAssertTrue(result.pipeHolders.contains { $0.process.command == "sleep" && !$0.killed },
                          "\(result.pipeHolders)")
        }
        for result in escaped {
            XCTAssertEqual(result.outcome, .timedOut)
            XCTAssertEqual(result.escapeesKilled, 1, "\(result.killed)")
        }

        // What the holding jobs were allowed to leave, cleaned up by hand;
        // nothing else of any job is left.
        let ids = results.map(\.result.id)
        func leftovers() -> [ProcessEntry] {
            ProcessTable.all().filter { entry in
                entry.state != "Z" && ids.contains { ProcessTable.carries(entry.pid, jobID: $0) }
            }
        }
        let kept = Set(held.flatMap { $0.leftRunning.map(\.pid) })
        let left = leftovers()
        XCTAssertEqual(Set(left.map(\.pid)), kept, "only what .leaveRunning kept is left: \(left)")
        for process in left { kill(process.pid, SIGKILL) }
        XCTAssertTrue(ProcessTable.wait { leftovers().isEmpty }, "left: \(leftovers())")
    }
}

/// Cgroup leaves are made ahead, on the inspector, for the jobs at the
/// head of the queue; a queued job waits for its leaf, never the loop.
final class LeafPoolTests: CorralTestCase {
    private static let hostVariable = "CORRAL_POOL_HOST_REPORT"

    private func requireCgroupTier() throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup, "cgroup v2 containment unavailable here")
    }

    private func leaves(_ directory: String) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory)
                && isDirectory.boolValue
        } ?? [])
    }

    /// A queued job's leaf exists before it starts; a cancelled job's leaf
    /// is removed; after shutdown nothing of the runner's directory is left.
    func testLeavesAreMadeAheadAndNothingIsLeftAfterShutdown() async throws {
        try requireCgroupTier()
        var configuration = self.configuration
        configuration.maxJobsInFlight = 1
        let single = try Runner(configuration: configuration)
        let directory = try XCTUnwrap(single.containment.directory)
        let results = ResultBox()
        let running = try single.submit(JobSpec(.executable("sleep", arguments: ["1000"])), onCompletion: results.add)
        XCTAssertNotNil(waitForProcess(of: running.id, named: "sleep"))
        let queued = try (0..<3).map { _ in try single.submit(JobSpec(.shell("echo $CORRAL_JOB_ID")), onCompletion: results.add) }

        XCTAssertTrue(ProcessTable.wait { self.leaves(directory).isSuperset(of: queued.map(\.id.rawValue)) },
                      "made ahead for the queued jobs: \(leaves(directory))")
        XCTAssertTrue(results.all.isEmpty, "none of them started")
        queued[0].cancel()
        XCTAssertTrue(ProcessTable.wait { !self.leaves(directory).contains(queued[0].id.rawValue) },
                      "a cancelled job's leaf is removed: \(leaves(directory))")
        running.cancel()
        let all = results.wait(for: 4)
        XCTAssertEqual(all.count, 4)
        for result in all where queued[1...].contains(where: { $0.id == result.id }) {
            XCTAssertEqual(result.outcome, .exited(0))
            XCTAssertEqual(result.containment, .cgroup)
            XCTAssertEqual(result.stdout.text, result.id.rawValue + "\n")
        }
        await single.shutdown()
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory), "left: \(leaves(directory))")
    }

    /// Not a test by itself: the host of `testLeavesOfACrashedRunnerAreRemovedByTheNextStart`.
    /// One job runs, three wait with their leaves made ahead; it writes
    /// its runner directory to the report file and waits to be killed.
    func testPoolHostHelper() async throws {
        guard let report = ProcessInfo.processInfo.environment[LeafPoolTests.hostVariable] else { return }
        var configuration = self.configuration
        configuration.maxJobsInFlight = 1
        let host = try Runner(configuration: configuration)
        for _ in 0..<4 { try host.submit(JobSpec(.executable("sleep", arguments: ["300"])), onCompletion: { _ in }) }
        try (host.containment.directory ?? "").write(toFile: report, atomically: true, encoding: .utf8)
        while true { try await Task.sleep(for: .seconds(1000)) }
    }

    func testLeavesOfACrashedRunnerAreRemovedByTheNextStart() async throws {
        try requireCgroupTier()
        let cgroup = try XCTUnwrap(PrivateCgroup())
        let marker = UUID().uuidString
        defer {
            OrphanedJobs.killAll(marker)
            cgroup.remove()
        }
        let report = scratch.appendingPathComponent("directory").path
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let host = try HostProcess([executable, "CorralTests.LeafPoolTests/testPoolHostHelper"], marker: marker,
                                   extraEnvironment: [LeafPoolTests.hostVariable: report],
                                   log: scratch.appendingPathComponent("host.log").path, cgroup: cgroup.path)
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(30)) {
            ((try? String(contentsOfFile: report, encoding: .utf8)) ?? "").hasPrefix("/")
        })
        let directory = try String(contentsOfFile: report, encoding: .utf8)
        // The running job's leaf and the made-ahead ones of those queued.
        XCTAssertTrue(ProcessTable.wait { self.leaves(directory).count >= 4 }, "\(leaves(directory))")
        let killedAt = host.killHard()
        _ = OrphanedJobs.waitForNone(marker, since: killedAt)

        // The next runner under the same base removes what is left of it
        // (the watchdog may have removed it already).
        var configuration = self.configuration
        configuration.containment = .cgroup(under: cgroup.path)
        let next = try Runner(configuration: configuration)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory), "left: \(leaves(directory))")
        await next.shutdown()
    }
}

/// Sleeping processes that carry no job marker, in a process group of
/// their own under one shell, which kills and reaps them all on `stop`.
final class Crowd: @unchecked Sendable {
    private let shell: pid_t
    private let control: Int32

    init(count: Int) throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw POSIXError(.EMFILE) }
        // The shell ignores TERM only after its sleeps are started, so they do not.
        let script = """
            i=0; while [ $i -lt \(count) ]; do sleep 600 & i=$((i+1)); done
            trap '' TERM; read line; kill -TERM 0; wait
            """
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[0], 0)
        posix_spawn_file_actions_addclose(&actions, ends[1])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own, an empty signal mask (the calling thread's
        // blocks nearly everything) and default dispositions.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        let arguments = ["/bin/sh", "-c", script]
        let environment = ["PATH=/usr/bin:/bin"]
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, &envp)
        Glibc.close(ends[0])
        guard status == 0 else {
            Glibc.close(ends[1])
            throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EINVAL)
        }
        shell = pid
        control = ends[1]
    }

    /// How many of its sleeps have started.
    var started: Int { ProcessTable.all().filter { $0.group == shell && $0.command == "sleep" }.count }

    private var stopped = false

    /// Kills the sleeps (the shell reaps them) and reaps the shell.
    func stop() {
        guard !stopped else { return }
        stopped = true
        Glibc.close(control)
        var status: Int32 = 0
        while waitpid(shell, &status, 0) < 0, errno == EINTR {}
    }
}
