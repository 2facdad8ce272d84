import Foundation
import XCTest
@testable import Corral

/// `corral batch` against destinations that do not keep up or fail: no
/// reader may hold up a deadline, and no write error may end in exit 0.
final class BatchWriterTests: CLITestCase {
    private func specs(_ count: Int, _ json: String) -> String {
        "for i in $(seq \(count)); do echo '\(json)'; done > jobs.jsonl\n"
    }

    /// 1,000 jobs with a 2 s deadline whose results go to a FIFO nobody
    /// reads: every job is dead soon after its deadline; after SIGINT and
    /// once a reader reads, every line has its result, each timed_out.
    func testResultsNobodyReadsHoldNoDeadline() async throws {
        let values = try await bash(CLITestCase.aliveFunction + CLITestCase.stalledReader() + specs(1000,
            #"{"argv": ["sleep", "30"], "timeout": "2s", "kill_after": "1s"}"#) + #"""
            start=$(now); echo "start=$start" >&2
            "$0" batch jobs.jsonl -j 1000 --quiet >&4 & corral=$!
            until [ "$(alive 30)" -gt 0 ] || [ $(( ($(now) - start) / 1000000000 )) -ge 60 ]; do sleep 0.1; done
            until [ "$(alive 30)" -eq 0 ] || [ $(( ($(now) - start) / 1000000000 )) -ge 60 ]; do sleep 0.2; done
            echo "dead=$(now)" >&2
            kill -0 $corral && echo "corral_alive=yes" >&2
            kill -INT $corral
            exec 5<"$fifo"; exec 4>&-
            cat <&5 >results.jsonl & exec 5<&-
            wait $corral; echo "status=$?" >&2
            echo "end=$(now)" >&2
            wait
            echo "lines=$(wc -l <results.jsonl)" >&2
            echo "timed_out=$(grep -c '"outcome":"timed_out"' results.jsonl)" >&2
            echo "longest=$(grep -o '"duration_s":[0-9.]*' results.jsonl | cut -d: -f2 | sort -n | tail -1)" >&2
            """#)
        let log = values["stderr"] ?? ""
        // Spawning 1,000 jobs on a loaded 2-core machine takes a while: the
        // bound from the start is loose (the sleeps would live 30 s), and
        // each job's own duration, spawn to result, is held to its deadline.
        XCTAssertLessThan(seconds(values, from: "start", to: "dead"), 25, "all dead long before 30 s: \(log)")
        XCTAssertLessThanOrEqual(Double(values["longest"] ?? "") ?? .infinity, 2 + 1 + 1, "every job within deadline + grace + 1 s: \(log)")
        XCTAssertEqual(values["corral_alive"], "yes", "corral waits for its reader: \(log)")
        XCTAssertEqual(values["status"], "130", log)
        XCTAssertLessThan(seconds(values, from: "dead", to: "end"), 2 + 5, log)
        XCTAssertEqual(values["lines"], "1000", log)
        XCTAssertEqual(values["timed_out"], "1000", log)
    }

    /// The same with each destination corral writes stalled in turn — the
    /// results to a reader stopped with SIGSTOP, the joblog to a FIFO
    /// nobody reads, the progress line to a full pipe — and, since nobody
    /// will ever read, a second SIGINT ends corral at once.
    func testEveryStalledDestinationHoldsNoDeadlineAndASecondSignalEndsCorral() async throws {
        // Each job's result and joblog line is over 1 KB: 100 of them fill a pipe.
        let padding = String(repeating: "p", count: 1000)
        let variants: [(name: String, setup: String, redirect: String)] = [
            ("stopped reader", #"mkfifo out; cat out >/dev/null & stopped=$!; kill -STOP $stopped"#, #"--quiet 1<>out"#),
            ("joblog", "", #"--quiet --joblog "$fifo" >/dev/null"#),
            ("progress", "head -c 65536 /dev/zero >&4", "--progress 2>&4 >/dev/null"),
        ]
        for (name, setup, redirect) in variants {
            let values = try await bash(CLITestCase.aliveFunction + CLITestCase.stalledReader() + specs(100,
                #"{"shell": "yes x | head -c 2000; exec sleep 30 # \#(padding)", "timeout": "2s", "kill_after": "1s"}"#) + #"""
                \#(setup)
                start=$(now); echo "start=$start" >&2
                "$0" batch jobs.jsonl -j 100 \#(redirect) & corral=$!
                until [ "$(alive 30)" -gt 0 ] || [ $(( ($(now) - start) / 1000000000 )) -ge 60 ]; do sleep 0.1; done
                until [ "$(alive 30)" -eq 0 ] || [ $(( ($(now) - start) / 1000000000 )) -ge 60 ]; do sleep 0.2; done
                echo "dead=$(now)" >&2
                kill -0 $corral && echo "corral_alive=yes" >&2
                kill -INT $corral; sleep 0.5; kill -INT $corral
                sent=$(now); echo "sent=$sent" >&2
                while kill -0 $corral 2>/dev/null && [ $(( ($(now) - sent) / 1000000000 )) -lt 30 ]; do sleep 0.1; done
                echo "end=$(now)" >&2
                kill -KILL $corral $stopped 2>/dev/null; wait
                exit 0
                """#)
            let log = values["stderr"] ?? ""
            XCTAssertLessThan(seconds(values, from: "start", to: "dead"), 25, "\(name): all dead long before 30 s: \(log)")
            XCTAssertEqual(values["corral_alive"], "yes", "\(name): corral is held up by its reader: \(log)")
            XCTAssertLessThan(seconds(values, from: "sent", to: "end"), 2 + 2, "\(name): a second SIGINT ends corral: \(log)")
        }
    }

    /// gen | corral batch - | head -1: corral ends like a filter (141) once
    /// its reader is gone, and leaves nothing running.
    func testAResultsReaderThatGoesAwayEndsTheBatch() async throws {
        let values = try await bash(CLITestCase.aliveFunction + #"""
            while true; do echo '{"argv": ["sleep", "30"]}'; echo '{"argv": ["true"]}'; done \
                | "$0" batch - -j 8 --quiet | head -1 >/dev/null
            echo "status=${PIPESTATUS[1]}" >&2
            echo "alive=$(alive 30)" >&2
            """#)
        XCTAssertEqual(values["status"], "141", values["stderr"] ?? "")
        XCTAssertEqual(values["alive"], "0", values["stderr"] ?? "")
    }

    /// --output and --joblog on a full filesystem: exit 125 and a message
    /// saying what was lost, never exit 0 with lines missing.
    func testAFullDiskIsAnErrorThatSaysWhatWasLost() async throws {
        let disk = scratch.appendingPathComponent("small").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        guard mount("tmpfs", disk, "tmpfs", 0, "size=16k") == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root): \(String(cString: strerror(errno)))")
        }
        defer { umount2(disk, Int32(MNT_DETACH)) }
        for (name, flags) in [("results", "--output \(disk)/results.jsonl"), ("joblog", "--joblog \(disk)/joblog.tsv >/dev/null")] {
            let values = try await bash(specs(300, #"{"argv": ["echo", "a line of output for the result"]}"#) + #"""
                rm -f \#(disk)/*
                "$0" batch jobs.jsonl -j 8 --quiet \#(flags)
                echo "status=$?" >&2
                """#)
            let log = values["stderr"] ?? ""
            XCTAssertEqual(values["status"], "125", "\(name): \(log)")
            XCTAssertTrue(log.contains("No space left on device"), "\(name): \(log)")
            XCTAssertTrue(log.contains("lines were not written"), "\(name): \(log)")
        }
    }

    func testANonBlockingStdoutGetsEveryLine() async throws {
        let values = try await bash(specs(2000, #"{"argv": ["true"]}"#) + #"""
            python3 -c '
            import fcntl, os, sys
            flags = fcntl.fcntl(1, fcntl.F_GETFL)
            fcntl.fcntl(1, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            os.execv(sys.argv[1], [sys.argv[1], "batch", "jobs.jsonl", "-j", "64", "--quiet"])' "$0" \
                | { sleep 1; wc -l; } >count
            echo "status=${PIPESTATUS[0]}" >&2
            echo "lines=$(tr -d ' ' <count)" >&2
            """#)
        XCTAssertEqual(values["status"], "0", values["stderr"] ?? "")
        XCTAssertEqual(values["lines"], "2000", values["stderr"] ?? "")
    }

    func testAnOutputThatIsTheInputIsRefusedBeforeItIsTruncated() async throws {
        let values = try await bash(specs(3, #"{"argv": ["true"]}"#) + #"""
            ln jobs.jsonl linked.jsonl
            "$0" batch jobs.jsonl --output jobs.jsonl; echo "same=$?" >&2
            "$0" batch jobs.jsonl --output linked.jsonl; echo "linked=$?" >&2
            "$0" batch jobs.jsonl --joblog ./jobs.jsonl; echo "joblog=$?" >&2
            "$0" batch - --output jobs.jsonl <jobs.jsonl; echo "stdin=$?" >&2
            "$0" batch jobs.jsonl --output out.jsonl --joblog out.jsonl; echo "both=$?" >&2
            echo "lines=$(wc -l <jobs.jsonl)" >&2
            """#)
        let log = values["stderr"] ?? ""
        for key in ["same", "linked", "joblog", "stdin", "both"] {
            XCTAssertEqual(values[key], "125", "\(key): \(log)")
        }
        XCTAssertTrue(log.contains("is the same file as the input"), log)
        XCTAssertEqual(values["lines"], "3", "the input is intact: \(log)")
    }

    /// tail -f jobs | corral batch -: Ctrl-C ends corral though its input never ends.
    func testInterruptEndsABatchWhoseInputNeverEnds() async throws {
        let values = try await bash(specs(3, #"{"argv": ["true"]}"#) + #"""
            tail -f jobs.jsonl | "$0" batch - --quiet >results.jsonl & corral=$!
            for i in $(seq 300); do [ "$(wc -l <results.jsonl)" -ge 3 ] && break; sleep 0.1; done
            sent=$(date +%s%N); kill -INT $corral
            while kill -0 $corral 2>/dev/null && [ $(( ($(date +%s%N) - sent) / 1000000000 )) -lt 30 ]; do sleep 0.1; done
            echo "sent=$sent" >&2; echo "end=$(date +%s%N)" >&2
            echo "results=$(wc -l <results.jsonl)" >&2
            kill -KILL $corral 2>/dev/null; pkill -P $$ tail; wait
            """#)
        XCTAssertLessThan(seconds(values, from: "sent", to: "end"), 5, values["stderr"] ?? "")
        XCTAssertEqual(values["results"], "3", values["stderr"] ?? "")
    }
}
