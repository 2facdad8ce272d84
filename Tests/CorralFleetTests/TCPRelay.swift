import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP relay to PostgreSQL that a test can cut and restore:
/// the database becomes unreachable for whoever connects through it (its
/// connections are reset, new ones refused), then reachable again on the
/// same port. Blocking sockets, one thread per direction.
final class TCPRelay: Sendable {
    let port: UInt16
    private let target: UInt16
    private struct State {
        var listener: Int32 = -1
        var connections: [Int32] = []
        var generation = 0
    }
    private let state = Mutex(State())

    init(to target: UInt16) throws {
        self.target = target
        let (fd, port) = try TCPRelay.listen(port: 0)
        self.port = port
        state.withLock { $0.listener = fd }
        startAccepting(fd, generation: 0)
    }

    /// Resets every relayed connection and stops listening.
    func cut() {
        let (listener, connections) = state.withLock { state -> (Int32, [Int32]) in
            defer {
                state.listener = -1
                state.connections = []
                state.generation += 1
            }
            return (state.listener, state.connections)
        }
        for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }  // their pumps close them
        if listener >= 0 {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    /// Listens again on the same port.
    func restore() throws {
        let (fd, _) = try TCPRelay.listen(port: port)
        let generation = state.withLock { state -> Int in
            state.listener = fd
            return state.generation
        }
        startAccepting(fd, generation: generation)
    }

    private func startAccepting(_ listener: Int32, generation: Int) {
        let thread = Thread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                guard let upstream = try? TCPRelay.connect(port: target) else {
                    close(client)
                    continue
                }
                let kept = state.withLock { state -> Bool in
                    guard state.generation == generation else { return false }
                    state.connections += [client, upstream]
                    return true
                }
                guard kept else {
                    close(client)
                    close(upstream)
                    return
                }
                let ended = PairEnd()
                TCPRelay.pump(from: client, to: upstream, ended: ended)
                TCPRelay.pump(from: upstream, to: client, ended: ended)
            }
        }
        thread.start()
    }

    /// Copies one direction; the second of a pair to end closes both.
    private static func pump(from source: Int32, to sink: Int32, ended: PairEnd) {
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                var offset = 0
                while offset < count {
                    let written = buffer[offset..<count].withUnsafeBytes { write(sink, $0.baseAddress, $0.count) }
                    guard written > 0 else { break }
                    offset += written
                }
                if offset < count { break }
            }
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(sink, Int32(SHUT_RDWR))
            if ended.count.withLock({ count -> Bool in
                count += 1
                return count == 2
            }) {
                close(source)
                close(sink)
            }
        }.start()
    }

    private static func address(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    private static func listen(port: UInt16) throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = TCPRelay.address(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && Glibc.listen(fd, 64) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            close(fd)
            throw FleetTestFailure("relay: cannot listen on port \(port): errno \(errno)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    private static func connect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = TCPRelay.address(port: port)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            close(fd)
            throw FleetTestFailure("relay: cannot reach port \(port)")
        }
        return fd
    }
}

/// How many directions of a relayed connection have ended.
private final class PairEnd: Sendable {
    let count = Mutex(0)
}
