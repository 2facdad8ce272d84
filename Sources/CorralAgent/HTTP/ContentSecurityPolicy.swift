import Foundation

/// The agent's Content-Security-Policy: nothing from anywhere but the page's
/// own inline script and style, admitted by the SHA-256 of their exact
/// bytes (no `unsafe-inline`, so injected markup cannot run or restyle),
/// requests to the agent itself only, and no framing by any page.
package enum ContentSecurityPolicy {
    /// The policy for `WebPage.html`, sent on every response.
    static let page = policy(for: WebPage.html)

    package static func policy(for html: String) -> String {
        let scripts = inlineElements("script", in: html).map(hashSource)
        let styles = inlineElements("style", in: html).map(hashSource)
        return ["default-src 'none'",
                "script-src " + (scripts.isEmpty ? "'none'" : scripts.joined(separator: " ")),
                "style-src " + (styles.isEmpty ? "'none'" : styles.joined(separator: " ")),
                "connect-src 'self'", "img-src 'self'", "base-uri 'none'", "form-action 'self'",
                "frame-ancestors 'none'"].joined(separator: "; ")
    }

    /// The text of each `<name>…</name>` element: what a browser hashes
    /// (the page writes these opening tags without attributes).
    static func inlineElements(_ name: String, in html: String) -> [Substring] {
        var found: [Substring] = []
        var rest = html[...]
        while let open = rest.range(of: "<\(name)>"), let close = rest[open.upperBound...].range(of: "</\(name)>") {
            found.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return found
    }

    private static func hashSource(_ text: Substring) -> String {
        "'sha256-" + Data(SHA256.digest(Array(text.utf8))).base64EncodedString() + "'"
    }
}
