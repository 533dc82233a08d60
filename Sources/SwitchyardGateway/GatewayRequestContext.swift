import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage plus the client's channel, so a long upstream wait
/// can notice the client has gone (Hummingbird does not cancel handlers on disconnect).
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Bodies are read by the handler with the configured `max_body_bytes`.
    public var maxUploadSize: Int { 64 << 20 }
}
