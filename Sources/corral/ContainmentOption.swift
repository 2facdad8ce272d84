import ArgumentParser
import Corral

/// `--containment auto|process-group`, shared by run, batch and agent.
enum ContainmentOption {
    static let help = ArgumentHelp("Containment: auto (cgroup v2 when available) or process-group.", valueName: "tier")

    static func parse(_ text: String) throws -> ContainmentSetting {
        switch text {
        case "auto": return .automatic
        case "process-group": return .processGroup
        default: throw ValidationError("--containment expects auto or process-group, got \"\(text)\"")
        }
    }
}
