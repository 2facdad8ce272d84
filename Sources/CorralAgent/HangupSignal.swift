import Logging
import UnixSignals

/// SIGHUP (a closed terminal, or an operator's "reload") would end the
/// agent like a crash: its jobs found `lost` by the next start. The agent
/// has nothing to reload, so it notes the signal in its log and runs on.
enum HangupSignal {
    /// Traps SIGHUP from now on (the trap is installed before this returns)
    /// and logs each one; cancel the task to stop logging.
    static func ignore(logger: Logger) async -> Task<Void, Never> {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        return Task {
            for await _ in signals {
                logger.notice("SIGHUP ignored: the agent does not reload its configuration; SIGTERM or SIGINT stops it gracefully")
            }
        }
    }
}
