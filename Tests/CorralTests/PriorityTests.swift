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
