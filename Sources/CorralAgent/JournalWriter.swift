import Logging

/// Commits what `LiveJobs` gathered in batches: woken by the first change,
/// then at most once per interval, so a crash loses at most the last
/// interval's output and the journal is not written once per chunk.
struct JournalWriter: Sendable {
    let journal: Journal
    let live: LiveJobs
    let wakes: AsyncStream<Void>
    let interval: Duration
    let logger: Logger
    let onCommit: @Sendable (JournalBatch) async -> Void

    /// Runs until `wakes` finishes, then commits what is left.
    func run() async {
        for await _ in wakes {
            await flush()
            try? await Task.sleep(for: interval)
        }
        await flush()
    }

    /// Commits everything pending now; retries on failure (a full disk) and
    /// keeps the batch meanwhile.
    func flush() async {
        while true {
            let batch = live.takeBatch()
            if batch.isEmpty { return }
            do {
                try await journal.apply(batch)
                live.committed(batch)
                await onCommit(batch)
                return
            } catch {
                logger.error("journal write failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
