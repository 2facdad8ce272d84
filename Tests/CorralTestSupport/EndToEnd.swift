import Corral
import Foundation

/// What the end-to-end test targets (CLI, agent and fleet) share: where the
/// built `corral` is, a test's scratch, marker and runner, the processes that
/// carry its marker, and a bounded wait.
public enum EndToEnd {
    /// The `corral` binary built beside the test bundle.
    public static var corralBinary: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("corral").path
    }

    /// Processes whose environment holds `CORRAL_E2E_MARKER=<marker>`, as
    /// "pid command".
    public static func markedProcesses(_ marker: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let needle = Array("CORRAL_E2E_MARKER=\(marker)".utf8)
        return names.compactMap { name -> String? in
            guard Int32(name) != nil, let data = FileManager.default.contents(atPath: "/proc/\(name)/environ"),
                  data.split(separator: 0).contains(where: { Array($0) == needle }) else { return nil }
            let command = (try? String(contentsOfFile: "/proc/\(name)/comm", encoding: .utf8)) ?? "?"
            return "\(name) \(command.trimmingCharacters(in: .newlines))"
        }
    }

    /// Polls `condition` until it holds or `limit` passes; its last answer.
    public static func waitUntil(upTo limit: Duration, polling interval: useconds_t, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(interval)
        }
        return condition()
    }

    /// What an end-to-end test starts from: a fresh scratch directory
    /// (`<prefix>-<UUID>` in the temporary directory), a marker no other
    /// process has in its environment, and a runner that reaps orphans and
    /// contains its jobs as `containment` says.
    public static func prepare(_ prefix: String, containment: ContainmentSetting = .automatic) throws
        -> (scratch: URL, marker: String, runner: Runner) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        var configuration = Runner.Configuration()
        configuration.reapOrphans = true
        configuration.containment = containment
        do {
            let runner = try Runner(configuration: configuration)
            return (scratch, UUID().uuidString, runner)
        } catch {
            try? FileManager.default.removeItem(at: scratch)
            throw error
        }
    }
}
