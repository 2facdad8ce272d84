#if canImport(Glibc)
import Glibc
#endif

/// Whether a host names this machine's loopback interface, decided on the
/// parsed address, never on a prefix of a name: `localhost`, an IPv4
/// literal in 127.0.0.0/8 (four decimal octets, as `inet_pton` reads them),
/// or the IPv6 literal `::1`. Everything else is not loopback —
/// `127.attacker.com`, `127.0.0.1.attacker.example`, `localhost.evil.com`,
/// `127.0.0.1@evil.com` included.
enum LoopbackHost {
    /// A `Host` header value (RFC 9110 `uri-host [ ":" port ]`): a loopback
    /// host, IPv6 in brackets, and an optional port of 1 to 5 digits.
    static func isLoopback(authority: some StringProtocol) -> Bool {
        let text = Substring(authority)
        let host: Substring
        let port: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return false }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || rest.hasPrefix(":") else { return false }
            port = rest.isEmpty ? nil : rest.dropFirst()
            return isPort(port) && isIPv6Loopback(host)
        }
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }  // an IPv6 literal must be bracketed
        host = parts[0]
        port = parts.count == 2 ? parts[1] : nil
        return isPort(port) && (isLocalhost(host) || isIPv4Loopback(host))
    }

    /// A bare host as `--listen` holds it (`::1` without brackets).
    static func isLoopback(host: some StringProtocol) -> Bool {
        let text = Substring(host)
        if text.contains(":") { return isIPv6Loopback(text) }
        return isLocalhost(text) || isIPv4Loopback(text)
    }

    private static func isLocalhost(_ host: Substring) -> Bool {
        host.lowercased() == "localhost"
    }

    private static func isPort(_ port: Substring?) -> Bool {
        guard let port else { return true }
        guard (1...5).contains(port.utf8.count), port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let number = Int(port) else { return false }
        return number <= 65535
    }

    private static func isIPv4Loopback(_ host: Substring) -> Bool {
        // Only digits and dots reach inet_pton, so nothing (a NUL
        // included) can cut the string short on its way to C.
        guard !host.isEmpty, host.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }) else { return false }
        var address = in_addr()
        guard inet_pton(AF_INET, String(host), &address) == 1 else { return false }
        return UInt32(bigEndian: address.s_addr) >> 24 == 127
    }

    private static func isIPv6Loopback(_ host: Substring) -> Bool {
        let allowed = host.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
                || byte == 0x3A || byte == 0x2E
        }
        guard !host.isEmpty, allowed else { return false }
        var address = in6_addr()
        guard inet_pton(AF_INET6, String(host), &address) == 1 else { return false }
        return withUnsafeBytes(of: &address) { bytes in
            bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1
        }
    }
}
