// The library's own hot paths under package-benchmark (ordo-one/benchmark):
// spawn throughput, deadline handling, output reading, and memory and
// allocations per job. Run by scripts/bench (or, by hand:
// CORRAL_BENCHMARKS=1 swift package --scratch-path .build-bench/swift benchmark).
import Benchmark
import Corral
import CorralFormat
import Synchronization

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal, .peakMemoryResident],
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 20
    )

    // One job at a time: the latency of a whole spawn → exit → result.
    Benchmark("spawn /bin/true, 1 in flight (100 jobs)") { benchmark in
        let runner = try Runner()
        benchmark.startMeasurement()
        for _ in 0..<100 { _ = try await runner.run(JobSpec(.executable("/bin/true"))) }
        benchmark.stopMeasurement()
        await runner.shutdown()
    }

    // Many at once through submit: the loop's throughput.
    Benchmark("spawn /bin/true, 64 in flight (500 jobs)") { benchmark in
        let runner = try Runner(configuration: { var c = Runner.Configuration(); c.maxJobsInFlight = 64; return c }())
        benchmark.startMeasurement()
        try await submitAll(runner, count: 500, spec: JobSpec(.executable("/bin/true")))
        benchmark.stopMeasurement()
        await runner.shutdown()
    }

    // Deadlines: 200 jobs past a 100 ms deadline, stopped and delivered.
    Benchmark("deadline: 200 x sleep 30, 100 ms deadline") { benchmark in
        let runner = try Runner()
        var spec = JobSpec(.executable("/bin/sleep", arguments: ["30"]))
        spec.timeout = .milliseconds(100)
        benchmark.startMeasurement()
        try await submitAll(runner, count: 200, spec: spec)
        benchmark.stopMeasurement()
        await runner.shutdown()
    }

    // JSON quoting of a result's output: 1 MiB of log lines (a quote and a
    // newline in every line), the text a result carries (target: ≤ 2 ms).
    Benchmark("JSON quote: 1 MiB of log lines", configuration: .init(maxIterations: 200)) { benchmark in
        let text = logLines(bytes: 1 << 20)
        benchmark.startMeasurement()
        blackHole(JSONWriter.quote(text))
        benchmark.stopMeasurement()
    }

    // Output: 256 MiB through one job's stdout, kept within 1 MiB.
    Benchmark("output: 256 MiB through stdout", configuration: .init(maxIterations: 10)) { benchmark in
        let runner = try Runner()
        let spec = JobSpec(.executable("/usr/bin/head", arguments: ["-c", String(256 << 20), "/dev/zero"]))
        benchmark.startMeasurement()
        let result = try await runner.run(spec)
        benchmark.stopMeasurement()
        precondition(result.stdout.totalBytes == 256 << 20)
        await runner.shutdown()
    }
}

/// Submits `count` jobs and waits for every result.
func submitAll(_ runner: Runner, count: Int, spec: JobSpec) async throws {
    let left = Atomic<Int>(count)
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
        do {
            for _ in 0..<count {
                try runner.submit(spec) { _ in
                    if left.subtract(1, ordering: .relaxed).newValue == 0 { continuation.resume() }
                }
            }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

/// About `bytes` of log-like text: timestamps, a quoted word, a non-ASCII
/// letter, a newline per line.
func logLines(bytes: Int) -> String {
    var text = ""
    var line = 0
    while text.utf8.count < bytes {
        text += "2026-12-01T12:00:00Z INFO worker[\(line % 8)] item \(line) done in 3 ms, status \"ok\", naïve\n"
        line += 1
    }
    return text
}
