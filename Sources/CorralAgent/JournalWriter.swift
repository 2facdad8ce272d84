import Logging
import Synchronization

/// Commits what `LiveJobs` gathered: woken by the first change, then at
/// most once per interval, so a crash loses at most the last interval's
/// output and the journal is not written once per chunk.
///
/// Each flush commits in bounded parts: results whose output is already
/// committed first, every other result after its output (`JournalBatch.parts`),
/// so that little free space still commits what fits. A failed write marks
/// the journal unhealthy (`JournalHealth`: 503 for submits, `/healthz`
/// degraded), is logged once, and is retried every `retryDelay` until it
/// works again; then the health is restored and that is logged too.
final class JournalWriter: Sendable {
    let journal: Journal
    let live: LiveJobs
    let health: JournalHealth
    let interval: Duration
    let retryDelay: Duration
    let logger: Logger
    private let wakes: AsyncStream<Void>
    private let stopping = Mutex(false)
    private let onCommit: @Sendable (JournalBatch) async -> Void

    init(journal: Journal, live: LiveJobs, health: JournalHealth, wakes: AsyncStream<Void>, interval: Duration,
         retryDelay: Duration = .milliseconds(500), logger: Logger, onCommit: @escaping @Sendable (JournalBatch) async -> Void) {
        self.journal = journal
        self.live = live
        self.health = health
        self.wakes = wakes
        self.interval = interval
        self.retryDelay = retryDelay
        self.logger = logger
        self.onCommit = onCommit
    }

    /// Runs until `stop()`: commits on every wake, and while writes fail,
    /// retries without waiting for one. What is left is for `drain`.
    func run() async {
        var iterator = wakes.makeAsyncIterator()
        while !stopping.withLock({ $0 }) {
            if !health.isFailingWrites {
                guard await iterator.next() != nil else { return }
            }
            let committedAll = await flush()
            try? await Task.sleep(for: committedAll ? interval : retryDelay)
        }
    }

    /// Ends `run` (which still finishes the flush it is in).
    func stop(finishing wake: AsyncStream<Void>.Continuation) {
        stopping.withLock { $0 = true }
        wake.finish()
    }

    /// After `run` ended: commits what is left, retrying until `deadline`.
    /// Returns what could not be committed, as a sentence, or nil.
    func drain(until deadline: ContinuousClock.Instant) async -> String? {
        while true {
            if await flush() { return nil }
            guard ContinuousClock.now + retryDelay < deadline else { break }
            try? await Task.sleep(for: retryDelay)
        }
        return live.uncommitted()
    }

    /// Commits everything pending now, part by part. Returns false when a
    /// part failed (the rest stays pending, and the health says why).
    func flush() async -> Bool {
        let batch = live.takeBatch()
        if batch.isEmpty {
            // Nothing to write: while failing, a tiny write tells whether
            // the journal takes writes again.
            guard health.isFailingWrites else { return true }
            do { try await journal.probe() } catch { return failed(error) }
            recovered()
            return true
        }
        for part in batch.parts() {
            do {
                try await journal.apply(part)
            } catch {
                return failed(error)
            }
            live.committed(part)
            await onCommit(part)
        }
        recovered()
        return true
    }

    private func failed(_ error: any Error) -> Bool {
        let reason = JournalHealth.reason(error)
        if health.writeFailed(reason) {
            logger.error("journal unavailable: \(reason); refusing new jobs and retrying every \(retryDelay)",
                         metadata: ["error": "\(error)", "journal": "\(journal.path)"])
        }
        return false
    }

    private func recovered() {
        if let was = health.writeSucceeded() {
            logger.notice("journal writable again (it was: \(was)); taking jobs again")
        }
    }
}
