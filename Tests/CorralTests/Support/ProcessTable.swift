import Foundation
@testable import Corral

/// A look at /proc, for checking what a job left behind.
struct ProcessEntry: CustomStringConvertible {
    let pid: Int32
    let parent: Int32
    let group: Int32
    let state: Character
    let command: String
    var description: String { "\(pid) ppid=\(parent) pgid=\(group) \(state) \(command)" }
}

enum ProcessTable {
    static func all() -> [ProcessEntry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { Int32($0) }.compactMap(entry)
    }

    static func entry(_ pid: Int32) -> ProcessEntry? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let command = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 3, let parent = Int32(fields[1]), let group = Int32(fields[2]) else { return nil }
        return ProcessEntry(pid: pid, parent: parent, group: group, state: fields[0].first!, command: command)
    }

    /// Whether the process's environment holds `CORRAL_JOB_ID=<id>`, or
    /// the id in `CORRAL_JOB_IDS` (a process of a Corral nested in the job).
    static func carries(_ pid: Int32, jobID: JobID) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        let marker = Array("CORRAL_JOB_ID=\(jobID.rawValue)".utf8)
        let listKey = Array("CORRAL_JOB_IDS=".utf8)
        return data.split(separator: 0).contains { entry in
            if Array(entry) == marker { return true }
            guard entry.starts(with: listKey) else { return false }
            return entry.dropFirst(listKey.count).split(separator: UInt8(ascii: ","))
                .contains { Array($0) == Array(jobID.rawValue.utf8) }
        }
    }

    /// Every process of a job: in its process group, or carrying its id.
    static func processes(of jobID: JobID, group: Int32?) -> [ProcessEntry] {
        all().filter { entry in
            if let group, entry.group == group { return true }
            return carries(entry.pid, jobID: jobID)
        }
    }

    /// Waits (up to `limit`) until `condition` holds; returns whether it did.
    static func wait(upTo limit: Duration = .seconds(10), until condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }

    static var threadCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    /// Threads of this process named `corral-loop` (one per live runner).
    static var loopThreadCount: Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.hasPrefix("corral-loop") ?? false
        }.count
    }

    static var descriptorCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }
}
