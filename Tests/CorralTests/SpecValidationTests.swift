import Synchronization
import XCTest
@testable import Corral

/// `JobSpec.validate()` is the library's edge: whatever a host builds, a
/// spec that passes it cannot trap on the loop thread later.
final class SpecValidationTests: CorralTestCase {
    private func message(_ change: (inout JobSpec) -> Void) -> String? {
        var spec = JobSpec(.executable("true"))
        change(&spec)
        do { try spec.validate(); return nil } catch { return error.message }
    }

    func testOutOfRangeValuesAreRefusedNamingTheField() {
        let cases: [(String, (inout JobSpec) -> Void)] = [
            ("user", { $0.user = .id(UInt32.max) }),
            ("group", { $0.group = .id(UInt32.max) }),
            ("user", { $0.user = .name("") }),
            ("group", { $0.group = .name("a\u{0}b") }),
            ("timeout", { $0.timeout = .zero }),
            ("timeout", { $0.timeout = .seconds(-1) }),
            ("timeout", { $0.timeout = JobSpec.maximumDuration + .nanoseconds(1) }),
            ("timeout", { $0.timeout = .seconds(Int64.max) }),
            ("killGrace", { $0.killGrace = .seconds(Int64.max) }),
            ("killGrace", { $0.killGrace = .seconds(-1) }),
            ("drainTimeout", { $0.drainTimeout = .seconds(Int64.max) }),
            ("stopSignal", { $0.stopSignal = Signal(rawValue: 0) }),
            ("stopSignal", { $0.stopSignal = Signal(rawValue: 65) }),
            ("outputLimit", { $0.outputLimit = .bytes(-1) }),
        ]
        for (field, change) in cases {
            let text = message(change)
            XCTAssertTrue(text?.hasPrefix(field + ": ") ?? false, "\(field): \(text ?? "accepted")")
        }
        XCTAssertNil(message { $0.timeout = JobSpec.maximumDuration; $0.killGrace = .zero; $0.drainTimeout = .zero })
        XCTAssertNil(message { $0.user = .id(UInt32.max - 1); $0.group = .id(0) })
    }

    /// The conversions the loop does with a spec's durations saturate
    /// instead of trapping, whatever the value.
    func testTimeArithmeticSaturates() {
        XCTAssertEqual(Duration.seconds(Int64.max).timerMilliseconds, UInt64(Int64.max / 1_000_000) + 1)
        XCTAssertEqual(Duration.seconds(-5).timerMilliseconds, 0)
        XCTAssertEqual(Duration.nanoseconds(1).timerMilliseconds, 1)
        XCTAssertEqual(Duration.milliseconds(2).timerMilliseconds, 2)
        let now = MonotonicInstant.now()
        XCTAssertEqual((now + .seconds(Int64.max)).nanoseconds, now.nanoseconds + UInt64(Int64.max))
        XCTAssertEqual((MonotonicInstant(nanoseconds: .max - 1) + .seconds(1)).nanoseconds, UInt64.max)
        XCTAssertEqual((now + .seconds(Int64.min)).nanoseconds, 0)
        XCTAssertEqual(MonotonicInstant(nanoseconds: 0) - MonotonicInstant(nanoseconds: 5), .nanoseconds(-5))
    }

    /// A job with the longest timeout accepted starts, and is cancelled
    /// like any other: its timer was set without overflow.
    func testTheLongestTimeoutRuns() async throws {
        var spec = JobSpec(.shell("echo started; exec sleep 30"))
        spec.timeout = JobSpec.maximumDuration
        spec.killGrace = JobSpec.maximumDuration
        spec.drainTimeout = JobSpec.maximumDuration
        // Cancelled once it has started (its first output), so its timers were set.
        let started = Locked((handle: JobHandle?.none, ready: false))
        let result: JobResult = try await withCheckedThrowingContinuation { continuation in
            do {
                let handle = try runner.submit(spec, onOutput: { _ in
                    started.withLock { state in state.ready = true; return state.handle }?.cancel()
                }, onCompletion: { continuation.resume(returning: $0) })
                started.withLock { state in state.handle = handle; return state.ready ? handle : nil }?.cancel()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        XCTAssertEqual(result.outcome, .cancelled)
    }
}
