import HTTPTypes
import Hummingbird
import Synchronization

/// The router's paths and the methods each answers, so that a request
/// with the wrong method on a known path gets 405 and an `Allow` header
/// rather than the router's 404. Filled once, after the routes are added
/// (the middleware that reads it has to be added before them).
package final class KnownRoutes: Sendable {
    private struct Route {
        /// Path segments; nil matches any one segment (a capture).
        let segments: [String?]
        var methods: [HTTPRequest.Method]
    }
    private let routes = Mutex<[Route]>([])

    package init() {}

    package func record<Context>(_ router: Router<Context>) {
        var table: [Route] = []
        for route in router.routes {
            let segments: [String?] = route.path.description.split(separator: "/").map { segment in
                segment.hasPrefix(":") || segment.hasPrefix("{") || segment.contains("*") ? nil : String(segment)
            }
            if let index = table.firstIndex(where: { $0.segments == segments }) {
                table[index].methods.append(route.method)
            } else {
                table.append(Route(segments: segments, methods: [route.method]))
            }
        }
        routes.withLock { $0 = table }
    }

    /// The methods a path answers (as an `Allow` header lists them), or nil
    /// for a path no route has.
    package func allowedMethods(for path: String) -> String? {
        let segments = path.split(separator: "/")
        let methods = routes.withLock { table in
            table.first { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { pattern, segment in pattern.map { $0 == segment } ?? true }
            }?.methods
        }
        return methods.map { $0.map(\.rawValue).joined(separator: ", ") }
    }
}
