import Foundation
import XCTest

/// `/metrics` as swift-prometheus renders it: every metric the agent has
/// always had, by the same name and type, with real counts.
final class AgentMetricsTests: AgentTestCase {
    func testEveryMetricNameIsThereWithItsTypeAndCounts() throws {
        let agent = try startAgent()
        let client = agent.client
        let ok = try client.post("/v1/jobs", json: #"{"argv":["true"]}"#)
        let late = try client.post("/v1/jobs", json: #"{"argv":["sleep","30"],"timeout":"100ms"}"#)
        for created in [ok, late] { _ = try waitForFinal(client, try XCTUnwrap(created.json["id"] as? String, created.text)) }

        var text = ""
        // The counters are updated once the results are committed.
        XCTAssertTrue(waitUntil {
            text = (try? client.get("/metrics").text) ?? ""
            return text.contains("corral_jobs_finished_total{outcome=\"timed_out\"} 1")
        }, text)
        let types = [
            "corral_build_info": "gauge",
            "corral_jobs_started_total": "counter",
            "corral_jobs_finished_total": "counter",
            "corral_jobs_running": "gauge",
            "corral_jobs_queued": "gauge",
            "corral_pipes_force_closed_total": "counter",
            "corral_job_duration_seconds": "histogram",
            "corral_deadline_overshoot_seconds": "histogram",
        ]
        for (name, type) in types {
            XCTAssertTrue(text.contains("# TYPE \(name) \(type)\n"), "\(name) \(type) missing:\n\(text)")
        }
        for line in [
            "corral_build_info{version=\"", "corral_jobs_started_total 2\n", "corral_jobs_finished_total{outcome=\"exited\"} 1\n",
            "corral_jobs_finished_total{outcome=\"lost\"} 0\n", "corral_jobs_running 0.0\n", "corral_jobs_queued 0.0\n",  // gauges are floating point
            "corral_job_duration_seconds_count 2\n", "corral_job_duration_seconds_bucket{le=\"+Inf\"} 2\n",
            "corral_deadline_overshoot_seconds_count 1\n", "corral_pipes_force_closed_total 0\n",
        ] {
            XCTAssertTrue(text.contains(line), "missing \(line) in:\n\(text)")
        }
    }

    /// Requests counted by Hummingbird's metrics middleware, by route,
    /// method and status, with Prometheus-safe names.
    func testRequestsAreCountedByRouteMethodAndStatus() throws {
        let agent = try startAgent()
        let client = agent.client
        for _ in 0..<3 { XCTAssertEqual(try client.get("/healthz").status, 200) }
        XCTAssertEqual(try client.get("/v1/jobs/j999999").status, 404)
        XCTAssertEqual(try client.post("/v1/jobs", json: #"{"argv":[]}"#).status, 400)

        let text = try client.get("/metrics").text
        for line in [
            #"hb_requests{http_route="/healthz",http_request_method="GET",http_response_status_code="200"} 3"#,
            #"hb_requests{http_route="/v1/jobs/{id}",http_request_method="GET",http_response_status_code="404"} 1"#,
            #"hb_requests{http_route="/v1/jobs",http_request_method="POST",http_response_status_code="400"} 1"#,
            "# TYPE http_server_request_duration histogram",
        ] {
            XCTAssertTrue(text.contains(line), "missing \(line) in:\n\(text)")
        }
        XCTAssertFalse(text.contains("hb.requests"), "names are Prometheus-safe")
    }
}
