import Logging
import UnixSignals

/// The signals that end the agent, trapped by the agent itself (not the
/// service group) so that each says how: SIGTERM and SIGINT stop it
/// gracefully (`shutdownGrace`), SIGUSR1 drains it (`drainTimeout`), and
/// a SIGTERM during a drain cuts the drain short.
enum StopSignals {
    /// Traps the three signals from now on (before this returns) and, on
    /// each, sets the stop's bound and calls `stop` (once is enough; a
    /// repeat is harmless). Cancel the task to stop watching.
    static func watch(service: JobService, logger: Logger,
                      stop: @escaping @Sendable () async -> Void) async -> Task<Void, Never> {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sigusr1)
        return Task {
            for await signal in signals {
                let draining = signal == .sigusr1
                if draining {
                    logger.notice("SIGUSR1: draining; new jobs are refused, the \(service.live.unfinished) running and queued get \(service.configuration.drainTimeout.components.seconds) s, then the agent exits")
                } else {
                    logger.notice("\(signal): shutting down; running jobs get \(service.configuration.shutdownGrace.components.seconds) s")
                }
                service.requestStop(draining: draining)
                await stop()
            }
        }
    }
}
