import Corral

/// A stored piece of output.
struct OutputRecord: Sendable {
    let seq: Int
    let stream: String
    let bytes: [UInt8]
}

/// A job a previous agent run did not finish.
struct UnfinishedJob: Sendable {
    let id: String
    let corralID: String?
    let pid: Int32?
    let startTicks: UInt64?
    let cgroup: String?
    let state: JobState
    let startedAt: WallClockTime?
    let runCgroupDirectory: String?
}

/// What the writer commits in one transaction.
struct JournalBatch: Sendable {
    struct Chunk: Sendable {
        let jobID: String
        let seq: Int
        let stream: String
        let bytes: [UInt8]
    }
    struct Start: Sendable {
        let jobID: String
        let corralID: String
        let pid: Int32
        let startTicks: UInt64?
        let cgroup: String?
        let startedAt: WallClockTime
    }
    struct Final: Sendable {
        let jobID: String
        let state: JobState
        let finishedAt: WallClockTime
        let startedAt: WallClockTime?
        let exitCode: Int32?
        let signal: String?
        let durationSeconds: Double?
        /// The result object with empty `stdout` and `stderr`: the output
        /// is stored once, in `outputs` (which point into the journaled
        /// chunks), and put back when the result is read.
        let resultJSON: String
        let message: String?
        /// Where each stream's kept output is: `ResultOutput`.
        var outputs: [ResultOutput] = []
        /// For metrics: result delivered minus deadline, for timed-out jobs.
        var overshootSeconds: Double? = nil
        var pipesForceClosed = false
    }
    var chunks: [Chunk] = []
    var starts: [Start] = []
    var finals: [Final] = []
    var isEmpty: Bool { chunks.isEmpty && starts.isEmpty && finals.isEmpty }

    /// The transactions to commit this batch in, each bounded: the starts
    /// and the finals of jobs with no chunk in this batch first (small, and
    /// what clients wait for), at most `finalsPerPart` at a time; then the
    /// output chunks, at most `chunkBytesPerPart` bytes at a time (or one
    /// chunk, if larger); then the finals of the jobs those chunks belong
    /// to. A result is never committed ahead of its output: after a crash
    /// between two parts, a committed result has all its kept output in the
    /// journal (the one whose chunks were cut is recovered as `lost`, with
    /// what was committed). A little free space commits what fits, and one
    /// failed part leaves the earlier ones committed.
    func parts(finalsPerPart: Int = 64, chunkBytesPerPart: Int = 256 * 1024) -> [JournalBatch] {
        var parts: [JournalBatch] = []
        let withChunks = Set(chunks.map(\.jobID))
        func addFinals(_ finals: [Final], starts: [Start] = []) {
            guard !finals.isEmpty || !starts.isEmpty else { return }
            var rest = finals[...]
            var first = JournalBatch()
            first.starts = starts
            first.finals = Array(rest.prefix(finalsPerPart))
            rest = rest.dropFirst(finalsPerPart)
            parts.append(first)
            while !rest.isEmpty {
                var part = JournalBatch()
                part.finals = Array(rest.prefix(finalsPerPart))
                rest = rest.dropFirst(finalsPerPart)
                parts.append(part)
            }
        }
        addFinals(finals.filter { !withChunks.contains($0.jobID) }, starts: starts)
        var part = JournalBatch()
        var bytes = 0
        for chunk in chunks {
            if !part.chunks.isEmpty, bytes + chunk.bytes.count > chunkBytesPerPart {
                parts.append(part)
                part = JournalBatch()
                bytes = 0
            }
            part.chunks.append(chunk)
            bytes += chunk.bytes.count
        }
        if !part.chunks.isEmpty { parts.append(part) }
        addFinals(finals.filter { withChunks.contains($0.jobID) })
        return parts
    }
}

/// Where one stream of a final result's kept output is stored: its first
/// `head` bytes are the first bytes of the job's journaled output chunks
/// (which hold the first `--max-output` bytes of each stream); `tail`
/// holds the rest (the kept end of an output that overflowed, or all of
/// it when the chunks do not have it). So a result's output is stored
/// once, not in both the chunks and the result.
struct ResultOutput: Sendable {
    /// `stdout` or `stderr`, as in the result object.
    let stream: String
    let head: Int
    let tail: [UInt8]

    /// Whether journaled chunks of `chunkStream` make up the result's
    /// `stream` (a combined pipe's output is the result's `stdout`).
    static func carries(_ chunkStream: String, into stream: String) -> Bool {
        chunkStream == stream || (stream == "stdout" && chunkStream == "combined")
    }

    /// How a captured stream is stored, given how many bytes of it the
    /// journal's chunks hold.
    init(stream: String, captured: CapturedOutput, journaled: Int) {
        self.stream = stream
        if captured.droppedBytes == 0, journaled >= captured.bytes.count {
            // Nothing dropped: the chunks hold all of it, in order (a 100 MiB
            // output under a 100 MiB cap is not stored again as a tail).
            head = captured.bytes.count
            tail = []
        } else if journaled >= captured.headCount {
            head = captured.headCount
            tail = Array(captured.bytes[captured.headCount...])
        } else {
            head = 0
            tail = captured.bytes
        }
    }

    init(stream: String, head: Int, tail: [UInt8]) {
        self.stream = stream
        self.head = head
        self.tail = tail
    }
}
