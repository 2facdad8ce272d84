#if canImport(CorralAgent)
import ArgumentParser
import CorralAgent
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `corral agent drain`: finds the agent that holds the data directory's
/// lock (its pid is in `agent.lock`), sends it SIGUSR1 and waits until it
/// has exited. No HTTP and no token: whoever may signal the agent may
/// drain it. The agent does the rest (`JobService.requestStop`).
struct AgentDrain {
    let dataDirectory: String

    func run() throws {
        let path = (dataDirectory as NSString).appendingPathComponent(DataDirectoryLockFile.name)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw ValidationError("no agent has used \(dataDirectory): cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // The agent holds an exclusive lock while it runs; a shared lock
        // we can take means none does (taken and released at once).
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            throw ValidationError("no agent is running on \(dataDirectory)")
        }
        guard let pid = DataDirectoryLockFile.holder(fd), pid > 1, let started = startTime(pid) else {
            throw ValidationError("the agent on \(dataDirectory) did not record its pid in \(path)")
        }
        // SIGUSR1's default action kills: signal only the process that
        // holds the lock now. Checked again right before the signal (the
        // lock is still held, by the pid recorded, which started when it
        // did), which leaves a window of microseconds for the agent to exit
        // and its pid to be reused; a pidfd would close it, but the CLI has
        // no pidfd call of its own (Glibc's module does not export one).
        guard flock(fd, LOCK_SH | LOCK_NB) != 0, DataDirectoryLockFile.holder(fd) == pid, startTime(pid) == started else {
            throw ValidationError("the agent on \(dataDirectory) (pid \(pid)) exited before it could be drained")
        }
        guard kill(pid, SIGUSR1) == 0 else {
            throw ValidationError("cannot signal the agent (pid \(pid)): \(String(cString: strerror(errno)))")
        }
        try say("corral agent: draining the agent (pid \(pid)); it exits once its jobs are done")
        // Until the process is gone (or a zombie, or its pid reused).
        while let now = startTime(pid), now == started, !isZombie(pid) {
            usleep(100_000)
        }
        try say("corral agent: the agent (pid \(pid)) has exited")
    }

    /// A line on stdout; a write error is the command's error (exit non-zero).
    private func say(_ text: String) throws {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((text + "\n").utf8))
        } catch {
            throw ValidationError("cannot write to stdout: \(error.localizedDescription)")
        }
    }

    /// Field 22 of /proc/PID/stat (the start time in ticks), nil once gone.
    private func startTime(_ pid: Int32) -> Substring? {
        fields(pid)?.dropFirst(19).first
    }

    private func isZombie(_ pid: Int32) -> Bool { fields(pid)?.first == "Z" }

    /// The fields of /proc/PID/stat after the command name (state first).
    private func fields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }
}
#endif
