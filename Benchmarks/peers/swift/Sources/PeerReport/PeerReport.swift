import Foundation
import Synchronization

/// The one JSON line every bench program prints (the schema of
/// Benchmarks/reference/ref.c), and the shared command-line handling.
public final class PeerReport: Sendable {
    private struct State {
        var jobs = 0
        var delivered = 0
        var errors = 0
        var firstError: String?
        var overshoots: [Double] = []
        var megabytesPerSecond: Double?
    }
    private let state = Mutex(State())
    private let started = ContinuousClock.now

    public init() {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }

    public func fail(_ error: any Error) {
        state.withLock {
            $0.errors += 1
            if $0.firstError == nil { $0.firstError = "\(error)" }
        }
    }

    public func delivered(overshootMilliseconds: Double? = nil) {
        state.withLock {
            $0.delivered += 1
            if let overshootMilliseconds { $0.overshoots.append(overshootMilliseconds) }
        }
    }

    public func setJobs(_ count: Int) { state.withLock { $0.jobs = count } }

    /// Runs `count` jobs with at most `limit` in flight, each counted as
    /// delivered when `job` returns and as failed when it throws.
    public func runJobs(count: Int, limit: Int, _ job: @escaping @Sendable () async throws -> Void) async {
        setJobs(count)
        await runBounded(count: count, limit: limit) {
            do {
                try await job()
                self.delivered()
            } catch { self.fail(error) }
        }
    }
    public func setThroughput(bytes: Int, seconds: Double) {
        state.withLock { $0.megabytesPerSecond = Double(bytes) / 1e6 / seconds }
    }

    public var elapsedSeconds: Double { PeerReport.seconds(since: started) }

    /// Seconds from `instant` to now.
    public static func seconds(since instant: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - instant
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Prints the report; exits 1 if nothing was delivered.
    public func finish(wall: Double) -> Never {
        let text = state.withLock { state -> String in
            var fields = ["\"jobs\":\(state.jobs)", "\"delivered\":\(state.delivered)", "\"errors\":\(state.errors)",
                          "\"wall_s\":\(wall)"]
            if !state.overshoots.isEmpty {
                let sorted = state.overshoots.sorted()
                func pick(_ p: Double) -> Double { sorted[Int(Double(sorted.count - 1) * p + 0.5)] }
                fields.append("\"overshoot_ms\":{\"p50\":\(pick(0.5)),\"p99\":\(pick(0.99)),\"max\":\(sorted.last!)}")
            }
            if let mbps = state.megabytesPerSecond { fields.append("\"mb_per_s\":\(mbps)") }
            if let error = state.firstError { FileHandle.standardError.write(Data((error + "\n").utf8)) }
            return "{" + fields.joined(separator: ",") + "}"
        }
        print(text)
        exit(0)
    }

    /// Allocates and touches this many MiB, and keeps it.
    public static func growHeap(mebibytes: Int) -> UnsafeMutableRawPointer {
        let size = mebibytes << 20
        let heap = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        var offset = 0
        while offset < size {
            heap.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self)
            offset += 4096
        }
        return heap
    }
}

/// The workloads, as ref.c takes them.
public enum Workload {
    case spawn(count: Int, inFlight: Int)
    case bigHeap(mebibytes: Int, count: Int)
    case deadline(count: Int, seconds: Double)
    case trickle(count: Int)
    case throughput(bytes: String)

    public static func parse(_ arguments: [String]) -> Workload {
        let int = { (index: Int) in Int(arguments[index]) ?? 0 }
        switch arguments.first {
        case "spawn": return .spawn(count: int(1), inFlight: int(2))
        case "bigheap": return .bigHeap(mebibytes: int(1), count: int(2))
        case "deadline": return .deadline(count: int(1), seconds: Double(arguments[2]) ?? 2)
        case "trickle": return .trickle(count: int(1))
        case "throughput": return .throughput(bytes: arguments[1])
        default:
            FileHandle.standardError.write(Data("usage: spawn N K | bigheap MIB N | deadline N S | trickle N | throughput BYTES\n".utf8))
            exit(2)
        }
    }
}

/// Runs `count` operations with at most `limit` in flight.
public func runBounded(count: Int, limit: Int, _ operation: @escaping @Sendable () async -> Void) async {
    await withTaskGroup(of: Void.self) { group in
        for index in 0..<count {
            if index >= limit { await group.next() }
            group.addTask { await operation() }
        }
    }
}
