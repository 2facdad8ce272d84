import HTTPTypes
import Hummingbird

/// The headers every response carries, errors and event streams included:
/// the Content-Security-Policy (`ContentSecurityPolicy.page`), `nosniff`,
/// and no referrer.
package struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    /// Computed when the middleware is made, at start.
    let policy: String

    /// With the agent's page's policy.
    package init() { policy = ContentSecurityPolicy.page }

    /// With another page's policy (`ContentSecurityPolicy.policy(for:)`).
    package init(policy: String) { self.policy = policy }

    package func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = policy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return response
    }
}
