import Foundation
import XCTest
import CorralTestSupport
@testable import Corral

/// Runners in different pid namespaces sharing one cgroup base: a pid
/// means nothing across them, so a runner's directory is proven dead by
/// its lock, never by a pid looked up here.
final class NamespaceTests: CorralTestCase {
    private static let baseVariable = "CORRAL_NS_HELPER_BASE"
    private static let reportVariable = "CORRAL_NS_HELPER_REPORT"

    /// Not a test by itself: the host in another pid namespace of
    /// `testRunnersInOtherPidNamespacesLeaveEachOthersJobsAlone`. It starts
    /// a runner under the given base, one job with an escapee, writes its
    /// runner directory to the report file and waits to be killed.
    func testNamespaceHostHelper() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let base = environment[NamespaceTests.baseVariable],
              let report = environment[NamespaceTests.reportVariable] else { return }
        var configuration = Runner.Configuration()
        configuration.containment = .cgroup(under: base)
        configuration.reapOrphans = true
        let host = try Runner(configuration: configuration)
        try host.submit(.shell("setsid sleep 1000 >/dev/null 2>&1 & exec sleep 1000"), onCompletion: { _ in })
        try (host.containment.directory ?? "none").write(toFile: report, atomically: true, encoding: .utf8)
        while true { try await Task.sleep(for: .seconds(1000)) }
    }

    func testRunnersInOtherPidNamespacesLeaveEachOthersJobsAlone() async throws {
        try XCTSkipUnless(runner.containment.tier == .cgroup, "cgroup v2 unavailable: \(runner.containment.note ?? "?")")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "no unshare(1)")
        let cgroup = try XCTUnwrap(PrivateCgroup(), "a private cgroup for the runners")
        let marker = UUID().uuidString
        defer {
            OrphanedJobs.killAll(marker)
            cgroup.remove()
        }
        var configuration = self.configuration
        configuration.containment = .cgroup(under: cgroup.path)

        // A runner here, with a job.
        let here = try Runner(configuration: configuration)
        let results = ResultBox()
        let ours = try here.submit(JobSpec(.executable("/bin/sleep", arguments: ["1000"])), onCompletion: results.add)
        let ourSleep = try XCTUnwrap(waitForProcess(of: ours.id, named: "sleep"))

        // A runner in a new pid namespace (its sh, then tail, is pid 1
        // there, so the host can die without taking the namespace down).
        let report = scratch.appendingPathComponent("directory").path
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        _ = try HostProcess(["/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", #""$0" "$1"; exec tail -f /dev/null"#,
                             executable, "CorralTests.NamespaceTests/testNamespaceHostHelper"],
                            marker: marker,
                            extraEnvironment: [NamespaceTests.baseVariable: cgroup.path, NamespaceTests.reportVariable: report],
                            log: scratch.appendingPathComponent("host.log").path)
        XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 2),
                      "the other namespace's job runs: \(EndToEnd.markedProcesses(marker))")
        XCTAssertTrue(ProcessTable.wait { FileManager.default.fileExists(atPath: report) })
        let theirs = try String(contentsOfFile: report, encoding: .utf8)
        XCTAssertTrue(theirs.hasPrefix(cgroup.path + "/corral/"), theirs)

        // Its start cleaned stale directories: ours is not one.
        XCTAssertEqual(ProcessTable.entry(ourSleep)?.state != "Z" && ProcessTable.entry(ourSleep) != nil, true,
                       "our job survived the other namespace's runner start")
        // Another runner starting here: theirs is not one either.
        let next = try Runner(configuration: configuration)
        await next.shutdown()
        XCTAssertEqual(OrphanedJobs.jobProcesses(marker, excluding: []).filter { $0.hasSuffix(" sleep") }.count, 2,
                       "their jobs survived this namespace's runner start: \(EndToEnd.markedProcesses(marker))")
        XCTAssertTrue(FileManager.default.fileExists(atPath: theirs))
        XCTAssertTrue(results.all.isEmpty)

        // Now their runner really dies, watchdog first: what its job left
        // (the escapee; the leader dies with the runner) stays in its
        // directory until a runner here cleans it, lock free.
        let processes = EndToEnd.markedProcesses(marker).map { $0.split(separator: " ", maxSplits: 1) }
        for entry in processes where entry.count == 2 && entry[1] == "corral-watchdog" { kill(pid_t(entry[0])!, SIGKILL) }
        let hostPIDs = processes.filter { $0.count == 2 && !["sleep", "sh", "tail", "unshare", "corral-watchdog"].contains(String($0[1])) }
        XCTAssertEqual(hostPIDs.count, 1, "the host: \(processes)")
        for entry in hostPIDs { kill(pid_t(entry[0])!, SIGKILL) }
        XCTAssertTrue(ProcessTable.wait {
            OrphanedJobs.jobProcesses(marker, excluding: ["sh", "tail", "unshare"]).filter { !$0.hasSuffix(" sleep") }.isEmpty
        }, "host and watchdog gone: \(EndToEnd.markedProcesses(marker))")
        XCTAssertTrue(OrphanedJobs.waitForRunning(marker, command: "sleep", count: 1), "the escapee outlived them")
        // Its lock is free only once every thread of the host has exited:
        // the leader can be a zombie (its environment already unreadable,
        // so it is no longer "marked") while another thread still holds
        // the descriptor table. Its sh reaps it only after the last thread.
        for entry in hostPIDs {
            let pid = pid_t(entry[0])!
            XCTAssertTrue(ProcessTable.wait { ProcessTable.entry(pid) == nil }, "host \(pid) reaped: \(ProcessTable.entry(pid)?.description ?? "gone")")
        }

        let cleaner = try Runner(configuration: configuration)
        await cleaner.shutdown()
        XCTAssertTrue(ProcessTable.wait {
            OrphanedJobs.jobProcesses(marker, excluding: ["sh", "tail", "unshare"]).isEmpty
        }, "the dead runner's leftovers were killed: \(EndToEnd.markedProcesses(marker))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: theirs), "and its directory removed")
        if FileManager.default.fileExists(atPath: theirs) {
            print("locks held: \((try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? "?")")
        }
        XCTAssertNotEqual(ProcessTable.entry(ourSleep)?.state, "Z", "ours still runs")
        XCTAssertNotNil(ProcessTable.entry(ourSleep))

        ours.cancel()
        XCTAssertEqual(results.wait(for: 1).first?.outcome, .cancelled)
        await here.shutdown()
    }
}
