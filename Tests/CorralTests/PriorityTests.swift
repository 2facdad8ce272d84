import CCorral
import Foundation
import XCTest
@testable import Corral

/// The loop keeps the CPU it needs: it runs above its jobs' priority (when
/// the kernel allows it), and the jobs run at the host's.
final class PriorityTests: CorralTestCase {
    /// 100 CPU-bound jobs on this 2-core machine, then 20 `sleep 30` jobs
    /// with a 2 s timeout: every sleeper is gone (no process carries its id)
    /// by 2 s + grace + 1 s after its spawn.
    ///
    /// Spawns run on the spawn thread: a child waiting for a CPU to reach
    /// its exec (one scheduling period among 100 runnable jobs) delays the
    /// next spawn, never a timer.
    func testSleepersKeepTheirDeadlinesWhileJobsSaturateTheCPU() throws {
        let hogStarts = Locked(0)
        let hogResults = ResultBox()
        var hogs: [JobHandle] = []
        for _ in 0..<100 {
            var spec = JobSpec(.executable("/bin/sh", arguments: ["-c", "while :; do :; done"]))
            spec.timeout = .seconds(300)
            hogs.append(try runner.submit(spec, onStart: { _ in hogStarts.withLock { $0 += 1 } },
                                          onCompletion: hogResults.add))
        }
        defer {
            hogs.forEach { $0.cancel() }
            XCTAssertEqual(hogResults.wait(for: 100, upTo: .seconds(60)).count, 100)
        }
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(60)) { hogStarts.withLock { $0 } == 100 },
                      "the CPU-bound jobs started")

        let grace = Duration.seconds(2)
        let sleepers = ResultBox()
        var ids = Set<String>()
        for _ in 0..<20 {
            var spec = JobSpec(.executable("/bin/sleep", arguments: ["30"]))
            spec.timeout = .seconds(2)
            spec.killGrace = grace
            ids.insert(try runner.submit(spec, onCompletion: sleepers.add).id.rawValue)
        }

        // The last moment each sleeper was seen alive: taken before the scan
        // that found it, so it never flatters the result.
        var lastSeenAlive: [String: MonotonicInstant] = [:]
        _ = ProcessTable.wait(upTo: .seconds(60)) {
            let scannedAt = MonotonicInstant.now()
            for id in ProcessTable.jobIDs(among: ids) { lastSeenAlive[id] = scannedAt }
            return sleepers.all.count == 20
        }
        let results = sleepers.all
        XCTAssertEqual(results.count, 20)
        let bound = Duration.seconds(2) + grace + .seconds(1)
        for result in results {
            XCTAssertEqual(result.outcome, .timedOut, "\(result.id)")
            XCTAssertLessThan(result.timing.duration, bound, "\(result.id) delivered late: \(result.timing)")
            guard let spawned = result.timing.spawned else { XCTFail("\(result.id) never spawned"); continue }
            if let seen = lastSeenAlive[result.id.rawValue] {
                XCTAssertLessThan(seen - spawned, bound, "\(result.id) still alive past its deadline + grace + 1 s")
            }
        }
        XCTAssertTrue(ProcessTable.jobIDs(among: ids).isEmpty, "a sleeper outlived its result")
    }

    /// A job runs at the nice value of the thread that made the runner, not
    /// the loop's: here 5, while the loop runs at -5 when allowed to.
    func testJobRunsAtTheHostsNiceNotTheLoops() async throws {
        // Without the right to raise a priority the loop keeps the host's
        // nice and there is nothing for the child to reset: nothing to test.
        let canRaise = Locked<Bool?>(nil)
        let probe = Thread {
            let tid = PriorityTests.threadID()
            canRaise.withLock { $0 = tid.map { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), $0, -1) == 0 } ?? false }
        }
        probe.start()
        XCTAssertTrue(ProcessTable.wait { canRaise.withLock { $0 != nil } })
        guard canRaise.withLock({ $0 }) == true else {
            throw XCTSkip("this process may not raise a thread's priority (no CAP_SYS_NICE or RLIMIT_NICE)")
        }
        let made = Locked<Result<Runner, CorralError>?>(nil)
        let configuration = self.configuration
        let thread = Thread {
            // PRIO_PROCESS with a thread id: this thread only ("<pid>/task/<tid>");
            // never 0, which would re-nice the whole test process.
            guard let tid = PriorityTests.threadID(),
                  setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, 5) == 0 else {
                made.withLock { $0 = .failure(CorralError(.invalidSpec, "cannot set this thread's nice value")) }
                return
            }
            do throws(CorralError) {
                let runner = try Runner(configuration: configuration)
                made.withLock { $0 = .success(runner) }
            } catch {
                made.withLock { $0 = .failure(error) }
            }
        }
        thread.start()
        XCTAssertTrue(ProcessTable.wait { made.withLock { $0 != nil } })
        let niced = try XCTUnwrap(made.withLock { $0 }).get()

        let result = try await niced.run(JobSpec(.executable("/bin/cat", arguments: ["/proc/self/stat"])))
        let loopNices = ProcessTable.loopThreadNices()  // its loop thread has run a job: it is raised by now
        await niced.shutdown()

        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(ProcessTable.nice(fromStat: result.stdout.text), 5, "the job has the host's nice value")
        let expected = 5 - EventLoop.priorityBoost
        XCTAssertTrue(loopNices.contains(expected), "the new runner's loop runs at \(expected): \(loopNices)")
    }

    /// Where the kernel allows the real-time class, the loop, the inspector
    /// and the cgroup thread run in it (autogroups make a nice value count
    /// only inside the runner's session), the loop above the other two, and
    /// a job runs in the normal class.
    func testLoopAndInspectorRunInTheRealTimeClassAndJobsDoNot() async throws {
        try PriorityTests.skipUnlessRealTimeIsAllowed()
        let result = try await runner.run(JobSpec(.executable("/bin/cat", arguments: ["/proc/self/stat"])))
        XCTAssertEqual(result.outcome, .exited(0))
        XCTAssertEqual(ProcessTable.policy(fromStat: result.stdout.text), 0, "the job runs in the normal class")
        // Each thread enters the class as it starts: waited for, not assumed.
        let expected = [("corral-loop", EventLoop.loopRealtimePriority), ("corral-inspect", EventLoop.workerRealtimePriority),
                        ("corral-cgroups", EventLoop.workerRealtimePriority)]
        for (thread, priority) in expected {
            let wanted = ProcessTable.SchedulingClass(policy: PriorityTests.roundRobin, priority: priority)
            XCTAssertTrue(ProcessTable.wait {
                let classes = ProcessTable.threadClasses(named: thread)
                return !classes.isEmpty && classes.allSatisfy { $0 == wanted }
            }, "\(thread) is SCHED_RR \(priority): \(ProcessTable.threadClasses(named: thread))")
        }
        for thread in ["corral-delivery", "corral-spawn"] {
            let classes = ProcessTable.threadClasses(named: thread)
            XCTAssertFalse(classes.isEmpty, "\(thread) found")
            XCTAssertTrue(classes.allSatisfy { $0.policy == 0 }, "\(thread) stays normal: \(classes)")
        }
    }

    /// A leader just signalled is hurried to its death in the real-time
    /// class only once the kernel has decided that it dies (no code of the
    /// job can run any more): not when it handles, ignores or blocks the
    /// signal, nor when the signal stops it; after SIGKILL, or a signal
    /// whose default action ends it, it is.
    func testOnlyALeaderThatCannotRunCodeAnyMoreIsHurried() async throws {
        try PriorityTests.skipUnlessRealTimeIsAllowed()
        // Perl (essential on Debian) sleeps in one system call: unlike a
        // shell loop it never forks, so it has no moment with every signal
        // blocked around a fork.
        let ready = "$| = 1; print \"ready\\n\"; sleep 1 while 1"
        let leaders: [(String, String, Int32, Bool)] = [
            ("handles", "$SIG{TERM} = sub { }; " + ready, SIGTERM, false),
            ("ignores", "$SIG{TERM} = 'IGNORE'; " + ready, SIGTERM, false),
            ("blocks", "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGTERM)); " + ready, SIGTERM, false),
            ("stops", ready, SIGTSTP, false),
            ("defaults", ready, SIGTERM, true),
        ]
        for (name, text, signal, doomed) in leaders {
            let started = Locked<JobStart?>(nil)
            let isReady = Locked(false)
            let results = ResultBox()
            let handle = try runner.submit(JobSpec(.executable("/usr/bin/perl", arguments: ["-e", text])),
                                           onOutput: { _ in isReady.withLock { $0 = true } },
                                           onStart: { start in started.withLock { $0 = start } },
                                           onCompletion: results.add)
            // Its disposition and mask are set once it says so; until its
            // result, its pid is still its own (the runner has not reaped it).
            XCTAssertTrue(ProcessTable.wait(upTo: .seconds(30)) { isReady.withLock { $0 } && started.withLock { $0 } != nil })
            let pid = try XCTUnwrap(started.withLock { $0 }).pid
            if doomed {
                try await assertHurried(pid, name) { kill(pid, signal) }
            } else {
                XCTAssertEqual(kill(pid, signal), 0, name)
                XCTAssertEqual(cc_hurry_dying_process(pid), -EBUSY, "\(name): its own code still runs")
                XCTAssertEqual(ProcessTable.policy(of: pid), 0, name)
                try await assertHurried(pid, "\(name), then SIGKILL") { kill(pid, SIGKILL) }
            }
            handle.cancel()
            XCTAssertEqual(results.wait(for: 1).count, 1, name)
        }
    }

    /// Doomed by `send`, hurried (now in SCHED_RR). Between `send` and
    /// the hurry's look the process must not run: a doomed process may
    /// otherwise already be in its exit, between taking SIGKILL off its
    /// queue and marking itself exiting, where it shows neither (1 run in
    /// 10 here). So the process is pinned to CPU 0, and a real-time thread
    /// of this test, pinned there too, sends, hurries and looks: while it
    /// runs, nothing of the normal class runs on that CPU, and it never
    /// waits on anything (earlier versions held the CPU with a spinning
    /// thread for a bounded second, which a loaded machine's test thread
    /// could miss, or froze the process, which changes how the kernel
    /// delivers a fatal signal to it).
    private func assertHurried(_ pid: pid_t, _ name: String, file: StaticString = #filePath, line: UInt = #line,
                               send: @escaping @Sendable () -> Int32) async throws {
        try XCTSkipUnless(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs a CPU to hold the process off")
        struct Seen: Sendable { var sent: Int32; var hurry: Int32; var policy: Int32? }
        let hogID = Locked<pid_t?>(nil), pinned = Locked(false), stop = Locked(false)
        let seen = Locked<Seen?>(nil), refused = Locked(false)
        let hog = Thread {
            hogID.withLock { $0 = PriorityTests.threadID().map(pid_t.init) }
            while !pinned.withLock({ $0 }), !stop.withLock({ $0 }) { usleep(1000) }
            guard !stop.withLock({ $0 }), cc_make_this_thread_realtime(50) == 0 else {
                refused.withLock { $0 = true }
                return
            }
            // From here on, on CPU 0, the process cannot run before this thread is done.
            let sent = send()
            let hurry = cc_hurry_dying_process(pid)
            let policy = ProcessTable.policy(of: pid)
            seen.withLock { $0 = Seen(sent: sent, hurry: hurry, policy: policy) }
        }
        hog.start()
        defer { stop.withLock { $0 = true } }
        XCTAssertTrue(ProcessTable.wait { hogID.withLock { $0 } != nil }, file: file, line: line)
        let hogThread = try XCTUnwrap(hogID.withLock { $0 }, file: file, line: line)
        for target in [pid, hogThread] {
            let pin = try await runner.run(JobSpec(.executable("/usr/bin/taskset", arguments: ["-p", "1", String(target)])))
            XCTAssertEqual(pin.outcome, .exited(0), "taskset \(target): \(pin.stderr.text)", file: file, line: line)
        }
        pinned.withLock { $0 = true }
        XCTAssertTrue(ProcessTable.wait(upTo: .seconds(30)) { seen.withLock { $0 } != nil || refused.withLock { $0 } },
                      "\(name): the real-time thread ran", file: file, line: line)
        let result = try XCTUnwrap(seen.withLock { $0 }, "\(name): the thread may not enter the real-time class", file: file, line: line)
        XCTAssertEqual(result.sent, 0, "\(name): sent", file: file, line: line)
        XCTAssertEqual(result.hurry, 0, "\(name): \(result.hurry)", file: file, line: line)
        XCTAssertEqual(result.policy, PriorityTests.roundRobin, name, file: file, line: line)
    }

    /// A job's handler of its stop signal, at its deadline, runs in the
    /// normal class: the stop hurries only leaders that cannot run code.
    func testAStopHandlerRunsInTheNormalClass() async throws {
        try PriorityTests.skipUnlessRealTimeIsAllowed()
        // dash runs the trap once its foreground sleep ends (killed by the
        // group's SIGTERM), then reads its own stat.
        var spec = JobSpec(.shell("trap 'read -r s < /proc/self/stat; echo \"$s\"; exit 0' TERM; echo ready; "
                              + "while :; do sleep 0.05; done"))
        spec.timeout = .milliseconds(500)
        spec.killGrace = .seconds(10)
        let result = try await runner.run(spec)
        XCTAssertEqual(result.outcome, .timedOut)
        let stat = try XCTUnwrap(result.stdout.text.split(separator: "\n").last.map(String.init), result.stdout.text)
        XCTAssertEqual(ProcessTable.policy(fromStat: stat), 0, "the handler ran in the normal class: \(stat)")
        XCTAssertLessThan(result.timing.duration, .seconds(8), "the handler ended the job, not the grace's SIGKILL")
    }

    /// SCHED_RR, as /proc/<pid>/stat shows a policy.
    static let roundRobin: Int32 = 2

    /// Skips unless a thread of this process may enter the real-time class
    /// (root, CAP_SYS_NICE, RLIMIT_RTPRIO): elsewhere the runner keeps the
    /// nice value alone and there is nothing to test. Probed on a thread of
    /// its own, which ends with the class it took.
    static func skipUnlessRealTimeIsAllowed() throws {
        let allowed = Locked<Bool?>(nil)
        let probe = Thread { allowed.withLock { $0 = cc_make_this_thread_realtime(1) == 0 } }
        probe.start()
        XCTAssertTrue(ProcessTable.wait { allowed.withLock { $0 != nil } })
        guard allowed.withLock({ $0 }) == true else {
            throw XCTSkip("this process may not enter the real-time class (no CAP_SYS_NICE or RLIMIT_RTPRIO)")
        }
    }

    /// The calling thread's id, from /proc/thread-self.
    static func threadID() -> id_t? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))?
            .split(separator: "/").last.flatMap { id_t($0) }
    }
}

extension ProcessTable {
    /// The `CORRAL_JOB_ID` values among `ids` that some live process carries.
    static func jobIDs(among ids: Set<String>) -> Set<String> {
        let key = Array("CORRAL_JOB_ID=".utf8)
        var found = Set<String>()
        for entry in all() where entry.state != "Z" {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry.pid)/environ") else { continue }
            for variable in data.split(separator: 0) where variable.starts(with: key) {
                let value = String(decoding: variable.dropFirst(key.count), as: UTF8.self)
                if ids.contains(value) { found.insert(value) }
            }
        }
        return found
    }

    /// The nice field (the 19th) of a `/proc/<pid>/stat` line.
    static func nice(fromStat stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        return fields.count > 16 ? Int32(fields[16]) : nil
    }

    /// The scheduling policy field (the 41st) of a `/proc/<pid>/stat` line:
    /// 0 normal, 1 FIFO, 2 round-robin.
    static func policy(fromStat stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        return fields.count > 38 ? Int32(fields[38]) : nil
    }

    static func policy(of pid: Int32) -> Int32? {
        (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).flatMap(policy(fromStat:))
    }

    struct SchedulingClass: Equatable, CustomStringConvertible {
        let policy: Int32
        let priority: Int32
        var description: String { "policy \(policy) priority \(priority)" }
    }

    /// The scheduling class of each thread of this process whose name
    /// starts with `name` (`/proc/<tid>/stat` fields 40 and 41).
    static func threadClasses(named name: String) -> [SchedulingClass] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            guard (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?.hasPrefix(name) == true,
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else {
                return nil
            }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 38, let priority = Int32(fields[37]), let policy = Int32(fields[38]) else { return nil }
            return SchedulingClass(policy: policy, priority: priority)
        }
    }

    /// The nice value of each live runner's loop thread.
    static func loopThreadNices() -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            guard (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
                    .hasPrefix("corral-loop") == true,
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8) else {
                return nil
            }
            return nice(fromStat: stat)
        }
    }
}
