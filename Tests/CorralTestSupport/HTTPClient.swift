import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.1 client on a raw socket, so the tests talk to
/// the agent the way any client does (no test-only transport). One
/// connection per request (`Connection: close`); bodies by Content-Length,
/// chunked, or to EOF; every wait bounded.
public struct HTTPClient: Sendable {
    public let port: UInt16
    public var timeout: Duration = .seconds(30)

    public init(port: UInt16, timeout: Duration = .seconds(30)) {
        self.port = port
        self.timeout = timeout
    }

    public struct Response: Sendable {
        public let status: Int
        public let headers: [String: String]
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        /// `error.code` of an error body.
        public var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

        public init(status: Int, headers: [String: String], body: [UInt8]) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) { self.description = description }
    }

    public func get(_ path: String, headers: [String: String] = [:]) throws -> Response {
        try request("GET", path, headers: headers)
    }

    public func post(_ path: String, json body: String, headers: [String: String] = [:]) throws -> Response {
        var all = headers
        all["Content-Type"] = all["Content-Type"] ?? "application/json"
        return try request("POST", path, headers: all, body: Array(body.utf8))
    }

    public func delete(_ path: String, headers: [String: String] = [:]) throws -> Response {
        try request("DELETE", path, headers: headers)
    }

    public func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) throws -> Response {
        let connection = try Connection(port: port, timeout: timeout)
        defer { connection.close() }
        try connection.send(method, path, headers: headers, body: body)
        return try connection.readResponse(until: nil)
    }

    /// Opens an event stream and reads it until `stop` says so (given the
    /// body text so far) or the server ends it.
    public func events(_ path: String, headers: [String: String] = [:], stop: @escaping (String) -> Bool = { _ in false }) throws -> Response {
        let connection = try Connection(port: port, timeout: timeout)
        defer { connection.close() }
        try connection.send("GET", path, headers: headers, body: [])
        return try connection.readResponse(until: stop)
    }

    /// Holds a stream open across steps of a test.
    public func openEvents(_ path: String, headers: [String: String] = [:]) throws -> Connection {
        let connection = try Connection(port: port, timeout: timeout)
        try connection.send("GET", path, headers: headers, body: [])
        return connection
    }

    public final class Connection {
        public let fd: Int32
        public let timeout: Duration
        private var buffer: [UInt8] = []
        private var headerEnd: Int?
        private var status = 0
        private var headers: [String: String] = [:]
        private var decoded: [UInt8] = []
        private var chunkCursor = 0
        private var ended = false
        private var readBuffer = [UInt8](repeating: 0, count: 1 << 20)

        public init(port: UInt16, timeout: Duration) throws {
            self.timeout = timeout
            fd = try HTTPClient.connectLoopback(port: port)
        }

        public func close() { Glibc.close(fd) }

        public func send(_ method: String, _ path: String, headers: [String: String], body: [UInt8]) throws {
            var head = "\(method) \(path) HTTP/1.1\r\nConnection: close\r\n"
            if headers["Host"] == nil { head += "Host: 127.0.0.1\r\n" }
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
            head += "\r\n"
            let bytes = Array(head.utf8) + body
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                guard written > 0 else { throw Failure(description: "write: errno \(errno)") }
                offset += written
            }
        }

        /// Reads until the body is complete, or `stop` (on the decoded body
        /// so far) is satisfied.
        public func readResponse(until stop: ((String) -> Bool)?) throws -> Response {
            let deadline = ContinuousClock.now + timeout
            while true {
                parse()
                if let stop, headerEnd != nil, stop(String(decoding: decoded, as: UTF8.self)) { break }
                if ended { break }
                let left = deadline - ContinuousClock.now
                guard left > .zero else {
                    throw Failure(description: "no complete response within \(timeout); so far: \(String(decoding: buffer.prefix(2000), as: UTF8.self))")
                }
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let millis = Int32(min(1000, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
                guard poll(&poller, 1, millis) >= 0 else { throw Failure(description: "poll: errno \(errno)") }
                if poller.revents == 0 { continue }
                let count = readBuffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 { throw Failure(description: "read: errno \(errno)") }
                if count == 0 {
                    parse()
                    ended = true
                    guard headerEnd != nil else { throw Failure(description: "connection closed before a response") }
                    break
                }
                buffer += readBuffer[0..<count]
            }
            return Response(status: status, headers: headers, body: decoded)
        }

        private func parse() {
            if headerEnd == nil {
                guard let end = find([13, 10, 13, 10], in: buffer, from: 0) else { return }
                headerEnd = end + 4
                let lines = String(decoding: buffer[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
                status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                chunkCursor = headerEnd!
            }
            if headers["transfer-encoding"]?.lowercased() == "chunked" {
                while let lineEnd = find([13, 10], in: buffer, from: chunkCursor) {
                    let sizeText = String(decoding: buffer[chunkCursor..<lineEnd], as: UTF8.self)
                    guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { ended = true; return }
                    if size == 0 { ended = true; return }
                    guard buffer.count >= lineEnd + 2 + size + 2 else { return }
                    decoded += buffer[(lineEnd + 2)..<(lineEnd + 2 + size)]
                    chunkCursor = lineEnd + 2 + size + 2
                }
            } else {
                // Only the bytes that came since the last call: a 100 MiB
                // body arrives in thousands of reads.
                decoded += buffer[(headerEnd! + decoded.count)...]
                if let length = headers["content-length"].flatMap(Int.init), decoded.count >= length { ended = true }
            }
        }

        private func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
            guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
            for index in start...(haystack.count - needle.count) where haystack[index] == needle[0] {
                if Array(haystack[index..<(index + needle.count)]) == needle { return index }
            }
            return nil
        }
    }
}

extension HTTPClient {
    /// Sends `bytes` as they are (a request no String can hold: header
    /// bytes that are not UTF-8, say) and returns the whole answer; the
    /// request should ask for `Connection: close`.
    public static func raw(port: UInt16, _ bytes: [UInt8]) throws -> String {
        let fd = try connectLoopback(port: port)
        defer { Glibc.close(fd) }
        var limit = timeval(tv_sec: 20, tv_usec: 0)  // an answer that never ends fails, not hangs
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw Failure(description: "write: errno \(errno)")
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            answer += buffer[..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// A close-on-exec TCP socket connected to 127.0.0.1:`port`; a receive
    /// buffer size, if given, is set before the connect (so the window the
    /// peer sees is small from the start).
    public static func connectLoopback(port: UInt16, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let error = errno
            Glibc.close(fd)
            throw Failure(description: "connect to port \(port): errno \(error)")
        }
        return fd
    }
}

/// Server-Sent Events as the tests read them.
public enum SSE {
    public struct Event {
        public var id: String?
        public var event = "message"
        public var data = ""
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
    }

    public static func parse(_ text: String) -> [Event] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var event = Event()
            var any = false
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix(":") {
                if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)); any = true }
                if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)); any = true }
                if line.hasPrefix("data: ") { event.data += String(line.dropFirst(6)); any = true }
            }
            return any && !event.data.isEmpty ? event : nil
        }
    }
}
