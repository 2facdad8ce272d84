import HTTPTypes
import Hummingbird

/// In front of every route: the token check (constant time; from the
/// `Authorization: Bearer` header, the `corral_token` cookie, or a `token`
/// query parameter, which the page turns into the cookie), the Host check
/// against DNS rebinding when there is no token, and the JSON error body for
/// every failure, the router's own 404 and 413 included (a known path with
/// the wrong method gets 405 and `Allow`).
package struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: TokenCheck?
    let listensOnLoopback: Bool
    let routes: KnownRoutes
    /// Whether `GET /` is a page (shown, static, to a browser without the
    /// token, so that it can ask for the token).
    var servesPage = true
    /// The page at `/`: the agent's, or the one `corral server` passes.
    let page: String

    package init(token: TokenCheck?, listensOnLoopback: Bool, routes: KnownRoutes, servesPage: Bool = true,
                 page: String? = nil) {
        self.token = token
        self.listensOnLoopback = listensOnLoopback
        self.routes = routes
        self.servesPage = servesPage
        self.page = page ?? WebPage.html
    }

    /// Answered without a token: health checks, and the API's description.
    static var publicPaths: Set<String> { ["/healthz", "/openapi.json"] }

    package func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var setCookie: String?
            if let token, !AccessMiddleware.publicPaths.contains(request.uri.path) {
                let fromQuery = request.uri.queryParameters.get("token").map { Substring($0) }
                guard let presented = AccessMiddleware.bearer(request) ?? AccessMiddleware.cookie(request) ?? fromQuery,
                      token.accepts(presented) else {
                    throw APIError(.unauthorized, "unauthorized", "a valid token is required: send 'Authorization: Bearer <token>'")
                }
                if fromQuery != nil, request.uri.path == "/" {
                    setCookie = "corral_token=\(presented); Path=/; HttpOnly; SameSite=Strict"
                }
            } else if token == nil, listensOnLoopback, !AccessMiddleware.hostIsLoopback(request) {
                throw APIError(.forbidden, "bad_host", "this agent answers to localhost names only (no token is set)")
            }
            var response = try await next(request, context)
            if let setCookie { response.headers[.setCookie] = setCookie }
            return response
        } catch let error as APIError {
            // A browser opening the page without the token gets the page
            // (static: no job data in it), which asks for the token; the API
            // calls it makes stay refused until it is given.
            if servesPage, error.status == .unauthorized, request.uri.path == "/", request.method == .get,
               request.headers[.accept]?.contains("text/html") == true {
                var headers = HTTPFields()
                headers[.contentType] = "text/html; charset=utf-8"
                return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
            }
            return error.response
        } catch let error as HTTPResponseError {
            switch error.status {
            case .notFound:
                if let allowed = routes.allowedMethods(for: request.uri.path) {
                    var response = APIError(.methodNotAllowed, "method_not_allowed",
                                            "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed)").response
                    response.headers[.allow] = allowed
                    return response
                }
                return APIError(.notFound, "not_found", "no route \(request.method) \(request.uri.path)").response
            case .contentTooLarge: return APIError(.contentTooLarge, "too_large", "the request body is too large").response
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed on \(request.uri.path)").response
            default: return APIError(error.status, "http_error", "\(error.status)").response
            }
        }
    }

    private static func bearer(_ request: Request) -> Substring? {
        guard let value = request.headers[.authorization], value.hasPrefix("Bearer ") else { return nil }
        return value.dropFirst("Bearer ".count)
    }

    private static func cookie(_ request: Request) -> Substring? {
        guard let header = request.headers[.cookie] else { return nil }
        for part in header.split(separator: ";") {
            let trimmed = part.drop(while: { $0 == " " })
            if trimmed.hasPrefix("corral_token=") { return trimmed.dropFirst("corral_token=".count) }
        }
        return nil
    }

    /// A page on another site cannot reach a loopback agent through a DNS
    /// name it rebinds to 127.0.0.1: the Host header gives it away. The host
    /// is parsed as an address (`LoopbackHost`), so `127.attacker.com` does
    /// not pass. A request without a Host is refused too: HTTP/1.1 requires
    /// one, and docs/agent.md promises a loopback Host, not the absence of any.
    private static func hostIsLoopback(_ request: Request) -> Bool {
        // A second Host header stays among the fields: refuse it outright.
        guard request.headers[values: HTTPField.Name("Host")!].isEmpty else { return false }
        // No Host at all (HTTP/1.0, or a bare HTTP/1.1 request) is not a
        // localhost name either.
        guard let authority = request.head.authority else { return false }
        return LoopbackHost.isLoopback(authority: authority)
    }
}
