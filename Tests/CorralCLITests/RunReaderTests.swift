import Foundation
import XCTest
@testable import Corral

/// `corral run` against readers that do not keep up: none of them may hold
/// up a deadline or a signal, and a reader that goes away is seen by the
/// job as if it wrote there itself.
final class RunReaderTests: CLITestCase {
    func testAReaderThatGoesAwayEndsTheJobWithItsOwnSIGPIPE() async throws {
        let values = try await bash(#"""
            echo "start=$(date +%s%N)" >&2
            "$0" run -- yes | head -1 >/dev/null
            echo "status=${PIPESTATUS[0]}" >&2
            echo "end=$(date +%s%N)" >&2
            """#)
        XCTAssertEqual(values["status"], "141", values["stderr"] ?? "")
        XCTAssertLessThan(seconds(values, from: "start", to: "end"), 10, "ends at once, not at a deadline")
    }

    func testAReaderThatNeverReadsHoldsNoDeadline() async throws {
        // The reader holds the pipe open and never reads; corral must end
        // the job at its 2 s deadline (plus the grace) all the same.
        let values = try await bash(CLITestCase.stalledReader() + #"""
            echo "start=$(date +%s%N)" >&2
            "$0" run --timeout 2s --kill-after 1s -- yes >&4
            echo "status=$?" >&2
            echo "end=$(date +%s%N)" >&2
            """#)
        XCTAssertEqual(values["status"], "124", values["stderr"] ?? "")
        XCTAssertLessThan(seconds(values, from: "start", to: "end"), 2 + 1 + 5, values["stderr"] ?? "")
    }

    func testTermActsWhileTheReaderIsStalled() async throws {
        let values = try await bash(CLITestCase.stalledReader() + #"""
            "$0" run -- yes >&4 & pid=$!
            sleep 0.5
            echo "sent=$(date +%s%N)" >&2
            kill -TERM $pid
            wait $pid
            echo "status=$?" >&2
            echo "end=$(date +%s%N)" >&2
            """#)
        XCTAssertEqual(values["status"], "143", values["stderr"] ?? "")
        XCTAssertLessThan(seconds(values, from: "sent", to: "end"), 5, values["stderr"] ?? "")
    }

    func testClosedStandardDescriptorsBecomeDevNullForTheJob() async throws {
        let values = try await bash(#"""
            "$0" run -- sh -c 'echo out; echo err >&2; cat; exit 3' <&- >&- 2>&-
            echo "closed=$?" >&2
            "$0" run --json -- sh -c 'ls -l /proc/self/fd/0 | grep -q "/dev/null"' <&- 2>/dev/null | grep -q '"exit_code":0'
            echo "stdin=$?" >&2
            "$0" run -- sh -c '[ "$(readlink /proc/$$/fd/1)" = /dev/null ] && [ "$(readlink /proc/$$/fd/2)" = /dev/null ]' >&- 2>&-
            echo "outputs=$?" >&2
            """#)
        XCTAssertEqual(values["closed"], "3", values["stderr"] ?? "")
        XCTAssertEqual(values["stdin"], "0", "a closed stdin reaches the job as /dev/null: \(values["stderr"] ?? "")")
        XCTAssertEqual(values["outputs"], "0", "a closed stdout and stderr reach the job as /dev/null: \(values["stderr"] ?? "")")
    }
}
