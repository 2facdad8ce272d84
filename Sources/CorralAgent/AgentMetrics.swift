import Synchronization

/// The agent's counters and histograms, rendered as Prometheus text.
final class AgentMetrics: Sendable {
    struct Histogram: Sendable {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var total = 0

        init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            for (index, bound) in bounds.enumerated() where value <= bound { counts[index] += 1 }
            sum += value
            total += 1
        }

        func render(_ name: String) -> String {
            var text = ""
            for (index, bound) in bounds.enumerated() {
                text += "\(name)_bucket{le=\"\(bound)\"} \(counts[index])\n"
            }
            text += "\(name)_bucket{le=\"+Inf\"} \(total)\n\(name)_sum \(sum)\n\(name)_count \(total)\n"
            return text
        }
    }

    private struct State {
        var started = 0
        var finished: [String: Int] = [:]
        var forceClosed = 0
        var duration = Histogram(bounds: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600])
        var overshoot = Histogram(bounds: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5])
    }

    private let state = Mutex(State())
    let version: String

    init(version: String) { self.version = version }

    func jobStarted() { state.withLock { $0.started += 1 } }

    func jobFinished(state outcome: JobState, duration: Double?, overshoot: Double?, pipesForceClosed: Bool) {
        state.withLock { state in
            state.finished[outcome.rawValue, default: 0] += 1
            if let duration { state.duration.observe(duration) }
            if let overshoot { state.overshoot.observe(max(0, overshoot)) }
            if pipesForceClosed { state.forceClosed += 1 }
        }
    }

    func render(queued: Int, running: Int) -> String {
        state.withLock { state in
            var text = """
                # HELP corral_build_info Corral's version.
                # TYPE corral_build_info gauge
                corral_build_info{version="\(version)"} 1
                # HELP corral_jobs_started_total Jobs whose leader was spawned.
                # TYPE corral_jobs_started_total counter
                corral_jobs_started_total \(state.started)
                # HELP corral_jobs_finished_total Jobs that reached a final state, by outcome.
                # TYPE corral_jobs_finished_total counter

                """
            for outcome in JobState.finalStates {
                text += "corral_jobs_finished_total{outcome=\"\(outcome.rawValue)\"} \(state.finished[outcome.rawValue, default: 0])\n"
            }
            text += """
                # HELP corral_jobs_running Jobs running now.
                # TYPE corral_jobs_running gauge
                corral_jobs_running \(running)
                # HELP corral_jobs_queued Jobs waiting to start.
                # TYPE corral_jobs_queued gauge
                corral_jobs_queued \(queued)
                # HELP corral_pipes_force_closed_total Jobs whose output pipes were still held by a descendant and were closed.
                # TYPE corral_pipes_force_closed_total counter
                corral_pipes_force_closed_total \(state.forceClosed)
                # HELP corral_job_duration_seconds From spawn to result.
                # TYPE corral_job_duration_seconds histogram

                """
            text += state.duration.render("corral_job_duration_seconds")
            text += """
                # HELP corral_deadline_overshoot_seconds For timed-out jobs: result delivered minus deadline.
                # TYPE corral_deadline_overshoot_seconds histogram

                """
            text += state.overshoot.render("corral_deadline_overshoot_seconds")
            return text
        }
    }
}
