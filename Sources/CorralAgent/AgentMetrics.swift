import CoreMetrics
import Prometheus

/// The agent's metrics: swift-metrics values on a swift-prometheus registry
/// of the agent's own (no process-wide bootstrap, so two agents in one
/// process never share counts), rendered by the registry for `/metrics`.
final class AgentMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let started: CoreMetrics.Counter
    private let finished: [String: CoreMetrics.Counter]
    private let forceClosed: CoreMetrics.Counter
    private let duration: CoreMetrics.Recorder
    private let overshoot: CoreMetrics.Recorder
    private let running: CoreMetrics.Gauge
    private let queued: CoreMetrics.Gauge
    let version: String

    init(version: String) {
        self.version = version
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets = [
            "corral_job_duration_seconds": [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600],
            "corral_deadline_overshoot_seconds": [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
        ]
        CoreMetrics.Gauge(label: "corral_build_info", dimensions: [("version", version)], factory: factory).record(1)
        started = CoreMetrics.Counter(label: "corral_jobs_started_total", factory: factory)
        var finished: [String: CoreMetrics.Counter] = [:]
        for outcome in JobState.finalStates {
            finished[outcome.rawValue] = CoreMetrics.Counter(label: "corral_jobs_finished_total",
                                                 dimensions: [("outcome", outcome.rawValue)], factory: factory)
        }
        self.finished = finished
        running = CoreMetrics.Gauge(label: "corral_jobs_running", factory: factory)
        queued = CoreMetrics.Gauge(label: "corral_jobs_queued", factory: factory)
        forceClosed = CoreMetrics.Counter(label: "corral_pipes_force_closed_total", factory: factory)
        duration = CoreMetrics.Recorder(label: "corral_job_duration_seconds", aggregate: true, factory: factory)
        overshoot = CoreMetrics.Recorder(label: "corral_deadline_overshoot_seconds", aggregate: true, factory: factory)
    }

    func jobStarted() { started.increment() }

    func jobFinished(state outcome: JobState, duration seconds: Double?, overshoot late: Double?, pipesForceClosed: Bool) {
        finished[outcome.rawValue]?.increment()
        if let seconds { duration.record(seconds) }
        if let late { overshoot.record(max(0, late)) }
        if pipesForceClosed { forceClosed.increment() }
    }

    /// Prometheus text (format 0.0.4), with the running and queued gauges
    /// set to the counts given.
    func render(queued queuedNow: Int, running runningNow: Int) -> String {
        running.record(runningNow)
        queued.record(queuedNow)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        RequestMetrics.render(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
