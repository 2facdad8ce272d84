import Corral
import Synchronization

/// The jobs of this agent run that are not yet wholly in the journal:
/// their handles, the output and state changes not yet committed, and who
/// is watching them. The loop thread's callbacks land here (short, under
/// one lock, nothing copied but the new chunk); the journal writer takes
/// what is pending and reports back what it committed.
final class LiveJobs: Sendable {
    /// What an event stream subscriber receives.
    enum Event: Sendable {
        case output(JournalBatch.Chunk)
        case started(pid: Int32)
        /// The result is committed: read it from the journal.
        case finished
        /// Time for a keep-alive comment.
        case keepAlive
    }

    /// Events buffered per subscriber at most. A subscriber that falls
    /// further behind is dropped (its stream ends; it resumes with
    /// `Last-Event-ID`). Besides, a job forwards at most its kept output.
    static let subscriberBuffer = 256

    private struct Entry {
        var handle: JobHandle?
        var cancelRequested = false
        var running = false
        var start: JournalBatch.Start?
        var nextSeq = 1
        /// Chunks not yet committed (they stay until the commit, so a
        /// subscriber that reads the journal and then these misses nothing).
        var pending: [JournalBatch.Chunk] = []
        /// Bytes kept per stream (pending or committed).
        var stored: [String: Int] = [:]
        let limit: Int
        var final: JournalBatch.Final?
        /// The result is committed; the entry stays until its last chunks are.
        var finalCommitted = false
        var subscribers: [Int: AsyncStream<Event>.Continuation] = [:]
        var isFinal: Bool { final != nil || finalCommitted }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Admitted and not yet started (including slots being journaled).
        var queued = 0
        var running = 0
        var accepting = true
        /// Event streams were ended for shutdown: no new subscriptions.
        var streamsEnded = false
        var nextSubscriber = 0
    }

    enum Refusal: Error { case queueFull, shuttingDown }

    private let state = Mutex(State())
    private let maxJobs: Int
    private let maxQueued: Int
    private let wakeWriter: @Sendable () -> Void

    init(maxJobs: Int, maxQueued: Int, wakeWriter: @escaping @Sendable () -> Void) {
        self.maxJobs = maxJobs
        self.maxQueued = maxQueued
        self.wakeWriter = wakeWriter
    }

    // MARK: Admission

    /// Takes a queue slot for a submit about to be journaled. A job that a
    /// free run slot will take does not wait: `--max-queued` bounds those
    /// beyond the free slots (0: run at once or be refused).
    func reserveSlot() throws(Refusal) {
        try state.withLock { (state: inout State) throws(Refusal) in
            guard state.accepting else { throw .shuttingDown }
            let free = max(0, maxJobs - state.running)
            guard state.queued < maxQueued + free else { throw .queueFull }
            state.queued += 1
        }
    }

    /// Gives back a slot that did not become a job (an idempotent replay).
    func releaseSlot() {
        state.withLock { $0.queued -= 1 }
    }

    /// The journaled job now lives here; its slot becomes its queue place.
    func add(_ id: String, outputLimit: Int) {
        state.withLock { $0.entries[id] = Entry(limit: outputLimit) }
    }

    /// The runner took the job; a cancel that came first is passed on now.
    func attach(_ handle: JobHandle, to id: String) {
        let cancelNow = state.withLock { state -> Bool in
            guard state.entries[id] != nil else { return false }
            state.entries[id]!.handle = handle
            return state.entries[id]!.cancelRequested
        }
        if cancelNow { handle.cancel() }
    }

    /// Stops taking new jobs (graceful shutdown).
    func stopAccepting() {
        state.withLock { $0.accepting = false }
    }

    var isAccepting: Bool { state.withLock { $0.accepting } }

    // MARK: From the loop thread

    func started(_ id: String, _ start: JobStart) {
        let subscribers = state.withLock { state -> [AsyncStream<Event>.Continuation] in
            guard state.entries[id] != nil else { return [] }
            state.entries[id]!.running = true
            state.entries[id]!.start = JournalBatch.Start(
                jobID: id, corralID: start.id.rawValue, pid: start.pid, startTicks: start.startTime,
                cgroup: start.cgroup, startedAt: start.startedAt)
            state.queued -= 1
            state.running += 1
            return Array(state.entries[id]!.subscribers.values)
        }
        LiveJobs.send(.started(pid: start.pid), to: subscribers)
        wakeWriter()
    }

    /// Keeps the part of `chunk` within the job's limit, appended in place.
    func output(_ id: String, _ chunk: OutputChunk) {
        let stream = LiveJobs.name(of: chunk.stream)
        let kept = state.withLock { state -> (JournalBatch.Chunk, [AsyncStream<Event>.Continuation])? in
            guard state.entries[id] != nil else { return nil }
            return LiveJobs.keep(chunk.bytes, stream: stream, of: id, in: &state.entries[id]!)
        }
        guard let (piece, subscribers) = kept else { return }
        LiveJobs.send(.output(piece), to: subscribers)
        wakeWriter()
    }

    private static func keep(_ bytes: [UInt8], stream: String, of id: String,
                             in entry: inout Entry) -> (JournalBatch.Chunk, [AsyncStream<Event>.Continuation])? {
        let room = entry.limit - entry.stored[stream, default: 0]
        guard room > 0 else { return nil }
        let piece = JournalBatch.Chunk(jobID: id, seq: entry.nextSeq, stream: stream,
                                       bytes: bytes.count <= room ? bytes : Array(bytes.prefix(room)))
        entry.nextSeq += 1
        entry.stored[stream, default: 0] += piece.bytes.count
        entry.pending.append(piece)
        return (piece, entry.subscribers.isEmpty ? [] : Array(entry.subscribers.values))
    }

    /// Bytes of output kept so far per stream (`stdout`, `stderr`, `combined`).
    func journaledBytes(_ id: String) -> [String: Int] {
        state.withLock { $0.entries[id]?.stored ?? [:] }
    }

    func finished(_ id: String, _ final: JournalBatch.Final) {
        state.withLock { state in
            guard state.entries[id] != nil else { return }
            if state.entries[id]!.running { state.running -= 1 } else { state.queued -= 1 }
            state.entries[id]!.running = false
            state.entries[id]!.final = final
        }
        wakeWriter()
    }

    // MARK: Cancel

    enum CancelAnswer { case cancelling, notLive }

    func cancel(_ id: String) -> CancelAnswer {
        let (answer, handle) = state.withLock { state -> (CancelAnswer, JobHandle?) in
            guard let entry = state.entries[id], !entry.isFinal else { return (.notLive, nil) }
            state.entries[id]!.cancelRequested = true
            return (.cancelling, entry.handle)
        }
        handle?.cancel()
        return answer
    }

    /// The bytes per stream a live job's output chunks keep (its
    /// `max_output`); nil once it is no longer live here.
    func outputLimit(_ id: String) -> Int? {
        state.withLock { $0.entries[id]?.limit }
    }

    /// Whether a client asked to cancel the job.
    func cancelRequested(_ id: String) -> Bool {
        state.withLock { $0.entries[id]?.cancelRequested ?? false }
    }

    // MARK: The journal writer

    /// Everything not yet committed (the writer splits it into bounded parts).
    func takeBatch() -> JournalBatch {
        state.withLock { state in
            var batch = JournalBatch()
            for entry in state.entries.values {
                batch.chunks += entry.pending
                if let start = entry.start { batch.starts.append(start) }
                if let final = entry.final { batch.finals.append(final) }
            }
            return batch
        }
    }

    /// A part is committed: drop what it held; end the finished jobs'
    /// streams; forget jobs whose result and output are all committed.
    func committed(_ part: JournalBatch) {
        var lastSeq: [String: Int] = [:]
        for chunk in part.chunks { lastSeq[chunk.jobID] = max(lastSeq[chunk.jobID] ?? 0, chunk.seq) }
        let ended = state.withLock { state -> [AsyncStream<Event>.Continuation] in
            for (id, seq) in lastSeq where state.entries[id] != nil {
                let done = state.entries[id]!.pending.prefix { $0.seq <= seq }.count
                state.entries[id]!.pending.removeFirst(done)
            }
            for start in part.starts where state.entries[start.jobID]?.start?.corralID == start.corralID {
                state.entries[start.jobID]!.start = nil
            }
            var ended: [AsyncStream<Event>.Continuation] = []
            for final in part.finals where state.entries[final.jobID] != nil {
                state.entries[final.jobID]!.final = nil
                state.entries[final.jobID]!.finalCommitted = true
                ended += state.entries[final.jobID]!.subscribers.values
                state.entries[final.jobID]!.subscribers = [:]
            }
            for id in Set(lastSeq.keys).union(part.finals.map(\.jobID)) {
                if let entry = state.entries[id], entry.finalCommitted, entry.pending.isEmpty { state.entries[id] = nil }
            }
            return ended
        }
        for subscriber in ended {
            subscriber.yield(.finished)
            subscriber.finish()
        }
    }

    /// What is not committed yet, as a sentence for the operator; nil if nothing.
    func uncommitted() -> String? {
        state.withLock { state in
            var finals: [String] = [], starts: [String] = [], chunkJobs: [String] = []
            var chunks = 0, bytes = 0
            for (id, entry) in state.entries {
                if entry.final != nil { finals.append(id) }
                if entry.start != nil { starts.append(id) }
                if !entry.pending.isEmpty { chunkJobs.append(id) }
                chunks += entry.pending.count
                bytes += entry.pending.reduce(0) { $0 + $1.bytes.count }
            }
            var parts: [String] = []
            if !finals.isEmpty { parts.append("the results of \(LiveJobs.list(finals))") }
            if !starts.isEmpty { parts.append("the start of \(LiveJobs.list(starts))") }
            if chunks > 0 { parts.append("\(chunks) output chunks (\(bytes) bytes) of \(LiveJobs.list(chunkJobs))") }
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }
    }

    private static func list(_ ids: [String]) -> String {
        let sorted = ids.sorted { ($0.count, $0) < ($1.count, $1) }
        return sorted.count <= 20 ? sorted.joined(separator: ", ")
            : sorted.prefix(20).joined(separator: ", ") + " and \(sorted.count - 20) more"
    }

    // MARK: Watching

    struct Subscription: Sendable {
        /// Output not yet committed when the subscription began.
        let pending: [JournalBatch.Chunk]
        let events: AsyncStream<Event>
        fileprivate let continuation: AsyncStream<Event>.Continuation

        /// Asks the stream for a keep-alive (dropped if it is behind anyway).
        func tick() { continuation.yield(.keepAlive) }
    }

    /// Output of a job still live here that is not yet committed.
    func pendingOutput(_ id: String) -> [JournalBatch.Chunk] {
        state.withLock { $0.entries[id]?.pending ?? [] }
    }

    /// Live events of a job whose result is not yet committed; nil once it
    /// is (read it from the journal), or while shutting down. The stream
    /// ends without `.finished` when the subscriber fell more than
    /// `subscriberBuffer` events behind, or on shutdown.
    func subscribe(_ id: String) -> Subscription? {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingOldest(LiveJobs.subscriberBuffer))
        let made = state.withLock { state -> (Int, [JournalBatch.Chunk])? in
            guard !state.streamsEnded, let entry = state.entries[id], !entry.finalCommitted else { return nil }
            let key = state.nextSubscriber
            state.nextSubscriber += 1
            state.entries[id]!.subscribers[key] = continuation
            return (key, entry.pending)
        }
        guard let (key, pending) = made else {
            continuation.finish()
            return nil
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.entries[id]?.subscribers.removeValue(forKey: key) }
        }
        return Subscription(pending: pending, events: stream, continuation: continuation)
    }

    /// Ends every event stream (graceful shutdown), and takes no new ones.
    func endStreams() {
        let all = state.withLock { state -> [AsyncStream<Event>.Continuation] in
            state.streamsEnded = true
            return state.entries.values.flatMap(\.subscribers.values)
        }
        for subscriber in all { subscriber.finish() }
    }

    /// Whether `endStreams` ended them (so a stream that ends without
    /// `.finished` before then was dropped for falling behind).
    var streamsHaveEnded: Bool { state.withLock { $0.streamsEnded } }

    private static func send(_ event: Event, to subscribers: [AsyncStream<Event>.Continuation]) {
        for subscriber in subscribers {
            if case .dropped = subscriber.yield(event) { subscriber.finish() }
        }
    }

    // MARK: Counts

    struct Counts: Sendable {
        let queued: Int
        let running: Int
    }

    /// Cheap: read on every health check, list and metrics scrape.
    var counts: Counts {
        state.withLock { Counts(queued: $0.queued, running: $0.running) }
    }

    /// Jobs without a result yet (walks the entries: for the shutdown).
    var unfinished: Int {
        state.withLock { $0.entries.values.count { !$0.isFinal } }
    }

    static func name(of stream: OutputChunk.Stream) -> String {
        switch stream {
        case .stdout: return "stdout"
        case .stderr: return "stderr"
        case .combined: return "combined"
        }
    }
}
