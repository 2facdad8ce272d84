/// A job as handed to the loop: the spec, its launch plan (or why it cannot
/// launch), and where its output and result go.
struct Submission: Sendable {
    let id: JobID
    let spec: JobSpec
    /// What execve needs; dropped once the job has started (nil), so a job
    /// in flight does not hold a copy of the whole environment.
    var plan: Result<LaunchPlan, SpawnFailure>?
    let submitted: MonotonicInstant
    let onOutput: (@Sendable (OutputChunk) -> Void)?
    var onStart: (@Sendable (JobStart) -> Void)? = nil
    /// Called on the loop; the result is finished (`PendingResult.finished`)
    /// and handed to the host on the delivery thread.
    let onCompletion: @Sendable (PendingResult) -> Void
}

/// A result as it leaves the loop: everything but the kept output, which
/// goes along unassembled (`KeptOutput`), so the loop never copies it.
struct PendingResult: Sendable {
    var result: JobResult
    var stdout = KeptOutput.empty
    var stderr = KeptOutput.empty

    init(_ result: JobResult, stdout: KeptOutput = .empty, stderr: KeptOutput = .empty) {
        self.result = result
        self.stdout = stdout
        self.stderr = stderr
    }

    /// The result with its output in stream order. Delivery thread.
    func finished() -> JobResult {
        var result = self.result
        result.stdout = stdout.captured()
        result.stderr = stderr.captured()
        return result
    }
}

/// What other threads ask of the loop.
enum LoopCommand: Sendable {
    case submit(Submission)
    case cancel(JobID)
    case shutdown
}
