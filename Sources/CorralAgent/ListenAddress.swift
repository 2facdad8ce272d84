/// `host:port` to listen on. Port 0 picks a free port (the agent prints it).
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `127.0.0.1:7070`, `[::1]:7070`, `localhost:0` or `:7070`
    /// (loopback).
    public init(parsing text: String) throws(AgentError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw AgentError("--listen expects HOST:PORT (like 127.0.0.1:7070), got \"\(text)\"")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    /// Reachable from this machine only: `localhost`, an address in
    /// 127.0.0.0/8 or `::1`, parsed as an address (`127.evil.com` is not).
    public var isLoopback: Bool { LoopbackHost.isLoopback(host: host) }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
