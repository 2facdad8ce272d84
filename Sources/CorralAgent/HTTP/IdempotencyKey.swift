import HTTPTypes

/// The `Idempotency-Key` header of a submit, validated: 1 to 200 printable
/// ASCII characters (space to `~`), as the IETF draft's key is. A header
/// value's other bytes reach the handler already decoded, with invalid
/// UTF-8 replaced by U+FFFD, so two different keys could read as one:
/// they are refused instead of ever meaning the same request.
package enum IdempotencyKey {
    package static let maxLength = 200

    package static func read(_ headers: HTTPFields) throws(APIError) -> String? {
        let name = HTTPField.Name("Idempotency-Key")!
        // Two headers read as one value joined by ", ": refused, not merged.
        guard headers[values: name].count <= 1 else {
            throw APIError(.badRequest, "bad_request", "give one Idempotency-Key header, not several")
        }
        guard let key = headers[name] else { return nil }
        guard !key.isEmpty, key.utf8.count <= maxLength, key.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw APIError(.badRequest, "bad_request",
                           "Idempotency-Key must be 1 to \(maxLength) printable ASCII characters (space to ~)")
        }
        return key
    }
}
