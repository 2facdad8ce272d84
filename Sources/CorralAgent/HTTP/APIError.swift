import CorralFormat
import HTTPTypes
import Hummingbird

/// An API failure as the client sees it: a status and the body
/// `{"error": {"code", "message", "field"?}}`.
package struct APIError: Error, Sendable {
    package let status: HTTPResponse.Status
    package let code: String
    package let message: String
    package let field: String?

    package init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    static func badSpec(field: String?, message: String) -> APIError {
        APIError(.badRequest, "invalid_spec", field.map { "\($0): \(message)" } ?? message, field: field)
    }

    static func notFound(_ id: String) -> APIError {
        APIError(.notFound, "not_found", "no job \(id)")
    }

    var body: String {
        var error = JSONWriter()
        error.add("code", code)
        error.add("message", message)
        if let field { error.add("field", field) }
        var json = JSONWriter()
        json.addRaw("error", error.text)
        return json.text + "\n"
    }

    package var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"corral\"" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
