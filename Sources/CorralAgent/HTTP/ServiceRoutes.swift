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
