// Corral's side of the side-by-side benchmarks: the same workloads and the
// same one-line JSON report as Benchmarks/reference/ref.c (see there).
import Corral
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Report {
    var jobs = 0
    var delivered = 0
    var errors = 0
    var wall = 0.0
    var overshoot: [Double] = []
    var megabytesPerSecond: Double?

    func print() {
        var text = "{\"jobs\":\(jobs),\"delivered\":\(delivered),\"errors\":\(errors),\"wall_s\":\(wall)"
        let sorted = overshoot.sorted()
        if !sorted.isEmpty {
            text += ",\"overshoot_ms\":{\"p50\":\(percentile(sorted, 0.5)),\"p99\":\(percentile(sorted, 0.99)),\"max\":\(sorted.last!)}"
        }
        if let megabytesPerSecond { text += ",\"mb_per_s\":\(megabytesPerSecond)" }
        Swift.print(text + "}")
    }
}

/// The `p` quantile of ascending `sorted` values (nearest rank); 0 if there are none.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[Int((Double(sorted.count - 1) * p).rounded())]
}

/// Runs `count` copies of `spec` with at most `inflight` at once and waits.
func run(_ runner: Runner, _ spec: JobSpec, count: Int, inflight: Int) -> [JobResult] {
    let results = Mutex<[JobResult]>([])
    let done = DispatchSemaphore(value: 0)
    let window = DispatchSemaphore(value: inflight)
    for _ in 0..<count {
        window.wait()
        _ = try! runner.submit(spec) { result in
            let finished = results.withLock { $0.append(result); return $0.count }
            window.signal()
            if finished == count { done.signal() }
        }
    }
    done.wait()
    return results.withLock { $0 }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    writeStandardError("usage: corral-bench spawn|deadline|cpudeadline|stalldeadline|trickle|throughput|bigheap …\n")
    exit(2)
}
var configuration = Runner.Configuration()
if environmentValue("CORRAL_BENCH_CONTAINMENT") == "processGroup" { configuration.containment = .processGroup }
var report = Report()
var start = MonotonicInstant.now()

switch arguments[1] {
case "spawn", "bigheap":
    let big = arguments[1] == "bigheap"
    var heap: UnsafeMutableRawPointer?
    if big {
        let bytes = Int(arguments[2])! << 20
        heap = malloc(bytes)
        for offset in stride(from: 0, to: bytes, by: 4096) {
            heap!.storeBytes(of: UInt8(truncatingIfNeeded: offset >> 12) | 1, toByteOffset: offset, as: UInt8.self)
        }
    }
    let count = Int(arguments[big ? 3 : 2])!
    let inflight = big ? 1 : Int(arguments[3])!
    configuration.maxJobsInFlight = inflight
    let runner = try Runner(configuration: configuration)
    var spec = JobSpec(.executable("/bin/true"))
    spec.output = .discarded
    start = .now()
    let results = run(runner, spec, count: count, inflight: inflight)
    report.wall = seconds(MonotonicInstant.now() - start)
    report.jobs = count
    report.delivered = results.count
    report.errors = results.filter { $0.outcome != .exited(0) }.count
    if let heap {
        // Read the heap back, so its pages are certainly touched and kept.
        var sum = 0
        for offset in stride(from: 0, to: Int(arguments[2])! << 20, by: 4096) {
            sum &+= Int(heap.load(fromByteOffset: offset, as: UInt8.self))
        }
        writeStandardError("heap pages: \(sum)\n")
    }
case "deadline", "trickle":
    let count = Int(arguments[2])!
    let deadline = arguments[1] == "deadline"
    let runner = try Runner(configuration: configuration)
    var spec = JobSpec(.executable("/bin/sleep", arguments: [deadline ? "30" : "1"]))
    spec.output = .discarded
    if deadline { spec.timeout = .seconds(Double(arguments[3])!) }
    let results = run(runner, spec, count: count, inflight: count)
    report.wall = seconds(MonotonicInstant.now() - start)
    report.jobs = count
    report.delivered = results.count
    report.errors = results.filter { $0.outcome != (deadline ? .timedOut : .exited(0)) }.count
    if deadline, let timeout = spec.timeout {
        report.overshoot = results.compactMap { result in
            result.timing.spawned.map { seconds(result.timing.delivered - ($0 + timeout)) * 1000 }
        }
    }
case "cpudeadline":
    // W7: `busy` CPU-bound jobs saturate the CPU while N sleeps run to
    // their deadline; overshoot is the sleeps' only. The spinners are
    // cancelled once every sleep is back.
    let busy = Int(arguments[2])!, count = Int(arguments[3])!
    let runner = try Runner(configuration: configuration)
    var spin = JobSpec(.executable("/bin/sh", arguments: ["-c", "while :; do :; done"]))
    spin.output = .discarded
    let spinners = (0..<busy).map { _ in try! runner.submit(spin) { _ in } }
    var spec = JobSpec(.executable("/bin/sleep", arguments: ["30"]))
    spec.output = .discarded
    spec.timeout = .seconds(Double(arguments[4])!)
    let results = run(runner, spec, count: count, inflight: count)
    spinners.forEach { $0.cancel() }
    report.wall = seconds(MonotonicInstant.now() - start)
    report.jobs = count
    report.delivered = results.count
    report.errors = results.filter { $0.outcome != .timedOut }.count
    report.overshoot = results.compactMap { result in
        result.timing.spawned.map { seconds(result.timing.delivered - ($0 + spec.timeout!)) * 1000 }
    }
    // Where the overshoot goes: to the leader's death, or from it to the result.
    let toExit = results.compactMap { result -> Double? in
        guard let spawned = result.timing.spawned, let exited = result.timing.leaderExited else { return nil }
        return seconds(exited - (spawned + spec.timeout!)) * 1000
    }.sorted()
    let toResult = results.compactMap { result -> Double? in
        result.timing.leaderExited.map { seconds(result.timing.delivered - $0) * 1000 }
    }.sorted()
    writeStandardError("W7 deadline to leader exit p50/p99 \(percentile(toExit, 0.5)) / \(percentile(toExit, 0.99)) ms; "
                       + "leader exit to result p50/p99 \(percentile(toResult, 0.5)) / \(percentile(toResult, 0.99)) ms\n")
case "stalldeadline":
    // W6: W2a with a consumer that takes nothing for `stall` seconds (its
    // first result callback blocks; every later one waits behind it on the
    // runner's delivery thread). Overshoot is when the leader was stopped,
    // relative to its deadline: what the stalled consumer must not move.
    let count = Int(arguments[2])!
    let stall = Double(arguments[4])!
    let runner = try Runner(configuration: configuration)
    var spec = JobSpec(.executable("/bin/sleep", arguments: ["30"]))
    spec.output = .discarded
    spec.timeout = .seconds(Double(arguments[3])!)
    let stalled = Mutex(false)
    let results = Mutex<[JobResult]>([])
    let done = DispatchSemaphore(value: 0)
    for _ in 0..<count {
        try! runner.submit(spec) { result in
            if !stalled.withLock({ let was = $0; $0 = true; return was }) {
                usleep(UInt32(stall * 1_000_000))
            }
            if results.withLock({ $0.append(result); return $0.count }) == count { done.signal() }
        }
    }
    done.wait()
    let all = results.withLock { $0 }
    report.wall = seconds(MonotonicInstant.now() - start)
    report.jobs = count
    report.delivered = all.count
    report.errors = all.filter { $0.outcome != .timedOut }.count
    report.overshoot = all.compactMap { result in
        guard let spawned = result.timing.spawned, let exited = result.timing.leaderExited else { return nil }
        return seconds(exited - (spawned + spec.timeout!)) * 1000
    }
case "throughput":
    let runner = try Runner(configuration: configuration)
    let spec = JobSpec(.executable("/usr/bin/head", arguments: ["-c", arguments[2], "/dev/zero"]))
    let result = run(runner, spec, count: 1, inflight: 1)[0]
    report.wall = seconds(MonotonicInstant.now() - start)
    report.jobs = 1
    report.delivered = 1
    report.errors = result.outcome == .exited(0) ? 0 : 1
    report.megabytesPerSecond = Double(result.stdout.totalBytes) / 1e6 / report.wall
default:
    writeStandardError("unknown workload \(arguments[1])\n")
    exit(2)
}
report.print()

func writeStandardError(_ text: String) { _ = text.withCString { write(2, $0, strlen($0)) } }

func environmentValue(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
