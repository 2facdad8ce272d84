import Corral
import Synchronization

/// The jobs of this agent run that are not yet final in the journal: their
/// handles, the output and state changes not yet committed, and who is
/// watching them. The loop thread's callbacks land here (short, under one
/// lock); the journal writer takes batches from here and reports back
/// what it committed.
final class LiveJobs: Sendable {
    /// What an event stream subscriber receives.
    enum Event: Sendable {
        case output(JournalBatch.Chunk)
        case started(pid: Int32)
        /// The result is committed: read it from the journal.
        case finished
    }

    private struct Entry {
        var handle: JobHandle?
        var cancelRequested = false
        var running = false
        var start: JournalBatch.Start?
        var nextSeq = 1
        /// Chunks not yet committed (they stay until the commit, so a
        /// subscriber that reads the journal and then these misses nothing).
        var pending: [JournalBatch.Chunk] = []
        var stored: [String: Int] = [:]
        let limit: Int
        var final: JournalBatch.Final?
        var subscribers: [Int: AsyncStream<Event>.Continuation] = [:]
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Admitted and not yet started (including slots being journaled).
        var queued = 0
        var running = 0
        var accepting = true
        var nextSubscriber = 0
    }

    enum Refusal: Error { case queueFull, shuttingDown }

    private let state = Mutex(State())
    private let maxQueued: Int
    private let wakeWriter: @Sendable () -> Void

    init(maxQueued: Int, wakeWriter: @escaping @Sendable () -> Void) {
        self.maxQueued = maxQueued
        self.wakeWriter = wakeWriter
    }

    // MARK: Admission

    /// Takes a queue slot for a submit about to be journaled.
    func reserveSlot() throws(Refusal) {
        try state.withLock { (state: inout State) throws(Refusal) in
            guard state.accepting else { throw .shuttingDown }
            guard state.queued < maxQueued else { throw .queueFull }
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
        for subscriber in subscribers { subscriber.yield(.started(pid: start.pid)) }
        wakeWriter()
    }

    func output(_ id: String, _ chunk: OutputChunk) {
        let stream = LiveJobs.name(of: chunk.stream)
        let (piece, subscribers) = state.withLock { state -> (JournalBatch.Chunk?, [AsyncStream<Event>.Continuation]) in
            guard var entry = state.entries[id] else { return (nil, []) }
            let room = entry.limit - entry.stored[stream, default: 0]
            guard room > 0 else { return (nil, []) }
            let bytes = chunk.bytes.count <= room ? chunk.bytes : Array(chunk.bytes.prefix(room))
            let piece = JournalBatch.Chunk(jobID: id, seq: entry.nextSeq, stream: stream, bytes: bytes)
            entry.nextSeq += 1
            entry.stored[stream, default: 0] += bytes.count
            entry.pending.append(piece)
            state.entries[id] = entry
            return (piece, Array(entry.subscribers.values))
        }
        guard let piece else { return }
        for subscriber in subscribers { subscriber.yield(.output(piece)) }
        wakeWriter()
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
            guard state.entries[id] != nil, state.entries[id]!.final == nil else { return (.notLive, nil) }
            state.entries[id]!.cancelRequested = true
            return (.cancelling, state.entries[id]!.handle)
        }
        handle?.cancel()
        return answer
    }

    // MARK: The journal writer

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

    /// The batch is committed: drop what it held; end the finished jobs'
    /// streams. Returns the finished jobs' finals.
    func committed(_ batch: JournalBatch) {
        var lastSeq: [String: Int] = [:]
        for chunk in batch.chunks { lastSeq[chunk.jobID] = max(lastSeq[chunk.jobID] ?? 0, chunk.seq) }
        let ended = state.withLock { state -> [AsyncStream<Event>.Continuation] in
            for (id, seq) in lastSeq { state.entries[id]?.pending.removeAll { $0.seq <= seq } }
            for start in batch.starts where state.entries[start.jobID]?.start?.corralID == start.corralID {
                state.entries[start.jobID]!.start = nil
            }
            var ended: [AsyncStream<Event>.Continuation] = []
            for final in batch.finals {
                if let entry = state.entries.removeValue(forKey: final.jobID) { ended += entry.subscribers.values }
            }
            return ended
        }
        for subscriber in ended {
            subscriber.yield(.finished)
            subscriber.finish()
        }
    }

    // MARK: Watching

    struct Subscription: Sendable {
        /// Output not yet committed when the subscription began.
        let pending: [JournalBatch.Chunk]
        let events: AsyncStream<Event>
    }

    /// Output of a job still live here that is not yet committed (empty
    /// once its result is in the journal).
    func pendingOutput(_ id: String) -> [JournalBatch.Chunk] {
        state.withLock { $0.entries[id]?.pending ?? [] }
    }

    /// Live events of a job still live here; nil once its result is in the
    /// journal (read it there).
    func subscribe(_ id: String) -> Subscription? {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .unbounded)
        let made = state.withLock { state -> (Int, [JournalBatch.Chunk])? in
            guard state.entries[id] != nil else { return nil }
            let key = state.nextSubscriber
            state.nextSubscriber += 1
            state.entries[id]!.subscribers[key] = continuation
            return (key, state.entries[id]!.pending)
        }
        guard let (key, pending) = made else {
            continuation.finish()
            return nil
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.entries[id]?.subscribers.removeValue(forKey: key) }
        }
        return Subscription(pending: pending, events: stream)
    }

    // MARK: Counts

    struct Counts: Sendable {
        let queued: Int
        let running: Int
        let live: Int
    }

    var counts: Counts {
        state.withLock { Counts(queued: $0.queued, running: $0.running, live: $0.entries.count) }
    }

    static func name(of stream: OutputChunk.Stream) -> String {
        switch stream {
        case .stdout: return "stdout"
        case .stderr: return "stderr"
        case .combined: return "combined"
        }
    }
}
