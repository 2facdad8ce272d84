import CoreMetrics
import Prometheus

/// Per-request metrics from Hummingbird's `MetricsMiddleware` (requests,
/// errors and duration by route, method and status). That middleware
/// records through the process-wide `MetricsSystem`, so this bootstraps it
/// once per process on a registry of its own; `/metrics` renders it after
/// the agent's own metrics. Metric and label names are made Prometheus-safe
/// (`hb.requests` becomes `hb_requests`, `http.route` `http_route`).
enum RequestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            (prometheusName(name), labels.map { (prometheusName($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Every character outside `[a-zA-Z0-9_:]` as `_`; a leading digit gets one too.
    static func prometheusName(_ name: String) -> String {
        var result = ""
        for scalar in name.unicodeScalars {
            let allowed = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
                || (scalar >= "0" && scalar <= "9") || scalar == "_" || scalar == ":"
            result.unicodeScalars.append(allowed ? scalar : "_")
        }
        if let first = result.unicodeScalars.first, first >= "0" && first <= "9" { result = "_" + result }
        return result
    }

    /// Prometheus text of the request metrics.
    static func render(into buffer: inout [UInt8]) {
        registry.emit(into: &buffer)
    }
}
