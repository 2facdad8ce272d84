import CorralFormat
import HTTPTypes
import Hummingbird

/// `/` (the page), `/healthz` and `/metrics`.
struct ServiceRoutes: Sendable {
    let service: JobService

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
        router.get("healthz") { _, _ in
            let counts = service.live.counts
            var body = JSONWriter()
            var healthy = false
            if !service.live.isAccepting {
                body.add("status", service.isDraining ? "draining" : "shutting_down")
            } else if let problem = service.health.problem {
                // Degraded: jobs are refused until the journal takes writes again.
                body.add("status", "degraded")
                body.add("reason", problem)
            } else {
                body.add("status", "ok")
                healthy = true
            }
            body.add("running", counts.running)
            body.add("queued", counts.queued)
            // What this agent is, for whoever checks it (no secrets: the token is never shown).
            body.add("version", service.version)
            body.add("host", service.hostName)
            body.add("containment", "\(service.runner.containment.tier)")
            body.add("data_dir", service.configuration.dataDirectory)
            body.add("max_jobs", service.configuration.maxJobs)
            body.add("max_queued", service.configuration.maxQueued)
            return json(body.text, status: healthy ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            let counts = service.live.counts
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            let text = service.metrics.render(queued: counts.queued, running: counts.running)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
    }
}
