/// Per-job flow control between a pipe read by the loop and the host's
/// output callback: bytes handed over and not yet consumed. Past the high
/// mark the loop stops reading the job's pipes; below the low mark it reads
/// again.
enum OutputFlow {
    static let highWater = 256 * 1024
    static let lowWater = 64 * 1024
}
