import Hummingbird
import NIOCore

/// The request context of the agent's routes: Hummingbird's basics plus
/// the connection's channel, so that an event stream whose client stops
/// reading can be closed when a write misses its deadline.
struct AgentRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
