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
            let accepting = service.live.isAccepting
            return json("{\"status\":\"\(accepting ? "ok" : "shutting_down")\",\"running\":\(counts.running),\"queued\":\(counts.queued)}",
                        status: accepting ? .ok : .serviceUnavailable)
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
