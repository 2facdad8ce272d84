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
    let onCompletion: @Sendable (JobResult) -> Void
}

/// What other threads ask of the loop.
enum LoopCommand: Sendable {
    case submit(Submission)
    case cancel(JobID)
    case shutdown
}
