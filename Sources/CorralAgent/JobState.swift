import Corral
import CorralFormat

/// Where a job is: waiting, running, or one of the final outcomes (the
/// `outcome` names of the result JSON, plus `lost` for a job whose agent
/// died under it).
enum JobState: String, Sendable, CaseIterable {
    case queued, running
    case exited, signaled, timedOut = "timed_out", cancelled, failedToStart = "failed_to_start", lost

    var isFinal: Bool { self != .queued && self != .running }

    init(_ outcome: Outcome) {
        self = JobState(rawValue: JobResultJSON.outcomeName(outcome)) ?? .lost
    }

    static let finalStates = allCases.filter(\.isFinal)
}
