import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// For the tests of "corral's death takes its jobs with it": a host process
/// (corral, or a test helper hosting a runner) started directly with
/// posix_spawn — not as a job of a test runner, whose own containment would
/// clean up after it and hide what the watchdog does — then killed.
public struct HostProcess {
    public let pid: pid_t
    /// Start of the host, for the figures a test reports.
    public let started = ContinuousClock.now

    /// Starts `arguments` with this process's environment plus
    /// `CORRAL_E2E_MARKER=<marker>` (its jobs inherit it), stdin and stdout
    /// from /dev/null, stderr to `log`; in the cgroup v2 directory `cgroup`
    /// if given (a shell moves itself there, then execs the host).
    public init(_ arguments: [String], marker: String, extraEnvironment: [String: String] = [:], log: String,
                cgroup: String? = nil) throws {
        var arguments = arguments
        if let cgroup {
            arguments = ["/bin/sh", "-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, cgroup] + arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["CORRAL_E2E_MARKER"] = marker
        // Its temporary files go beside its log, in the calling test's
        // scratch directory: a host test case killed with -9 never runs its
        // tearDown, and its scratch directory was left in /tmp.
        environment["TMPDIR"] = (log as NSString).deletingLastPathComponent
        for (key, value) in extraEnvironment { environment[key] = value }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard status == 0 else { throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EIO) }
        self.pid = pid
    }

    /// SIGKILL, the way the OOM killer or `kill -9` ends it; returns when.
    @discardableResult
    public func killHard() -> ContinuousClock.Instant {
        kill(pid, SIGKILL)
        return ContinuousClock.now
    }
}

/// A cgroup v2 directory of the test's own beside this process's cgroup,
/// so a host started in it keeps its runner directories where no other
/// runner's stale-directory cleanup (which would kill what the watchdog
/// should) looks: other test suites may share this machine's hierarchy.
public final class PrivateCgroup {
    public let path: String

    /// Nil where no writable cgroup v2 hierarchy is found.
    public init?() {
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
              let own = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8))?
                .split(separator: "\n").first(where: { $0.hasPrefix("0::") }),
              let mount = mountinfo.split(separator: "\n").first(where: { $0.contains(" - cgroup2 ") })?
                .split(separator: " ").dropFirst(4).first else { return nil }
        let base = own.dropFirst(3) == "/" ? String(mount) : String(mount) + own.dropFirst(3)
        path = base + "/corral-test-\(UUID().uuidString.prefix(8))"
        guard mkdir(path, 0o755) == 0 else { return nil }
    }

    /// Removes it and the (empty) cgroups in it, depth first.
    public func remove() { PrivateCgroup.removeTree(path) }

    private static func removeTree(_ path: String) {
        if rmdir(path) == 0 { return }
        let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for child in children {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/" + child, isDirectory: &isDirectory), isDirectory.boolValue {
                removeTree(path + "/" + child)
            }
        }
        rmdir(path)
    }
}

public enum OrphanedJobs {
    /// Marked processes other than those named `excluded` (the hosts
    /// themselves), as "pid command"; zombies are not listed (they have no
    /// environment left).
    public static func jobProcesses(_ marker: String, excluding excluded: Set<String>) -> [String] {
        EndToEnd.markedProcesses(marker).filter { !excluded.contains(String($0.split(separator: " ", maxSplits: 1).last ?? "")) }
    }

    /// Waits until nothing carrying `marker` but the excluded commands is
    /// alive, for up to `limit`, polling every 5 ms; returns how long that
    /// took, or nil if something was still alive at the end (then it is
    /// killed, so no test leaks processes).
    public static func waitForNone(_ marker: String, excluding excluded: Set<String> = [], since start: ContinuousClock.Instant,
                                   upTo limit: Duration = .seconds(5)) -> (elapsed: Duration?, left: [String]) {
        let gone = EndToEnd.waitUntil(upTo: limit, polling: 5_000) { jobProcesses(marker, excluding: excluded).isEmpty }
        if gone { return (ContinuousClock.now - start, []) }
        let left = jobProcesses(marker, excluding: excluded)
        killAll(marker)
        return (nil, left)
    }

    /// SIGKILL to every process carrying the marker, until none is left (bounded).
    public static func killAll(_ marker: String) {
        _ = EndToEnd.waitUntil(upTo: .seconds(5), polling: 10_000) {
            let left = EndToEnd.markedProcesses(marker)
            for entry in left { if let pid = pid_t(entry.split(separator: " ")[0]) { kill(pid, SIGKILL) } }
            return left.isEmpty
        }
    }

    /// Waits until `count` processes named `command` carry the marker.
    public static func waitForRunning(_ marker: String, command: String, count: Int, upTo limit: Duration = .seconds(30)) -> Bool {
        EndToEnd.waitUntil(upTo: limit, polling: 10_000) {
            EndToEnd.markedProcesses(marker).filter { $0.hasSuffix(" \(command)") }.count >= count
        }
    }
}
