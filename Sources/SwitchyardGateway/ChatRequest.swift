import NIOCore
import SwitchyardCore

/// One inbound chat request, decoded just enough to route.
struct ChatRequest: Sendable {
    let body: ByteBuffer
    let summary: ChatRequestSummary
    let route: Route
    let snapshot: RoutingSnapshot
    let affinity: String?
    /// Wall-clock deadline for health bookkeeping; `deadlineMono` bounds the waiting.
    let deadline: Timestamp
    let deadlineMono: UInt64
    let channel: (any Channel)?
    /// Whether upstream calls must watch `channel` themselves: false when the caller's task is cancelled as the
    /// connection closes (`ChatChannelHandler` does that; Hummingbird does not).
    var watchesClient = true
    /// The upstream endpoint the request goes to.
    var endpoint = UpstreamEndpoint.chatCompletions
}

/// The provider endpoints the gateway proxies, by their path under a provider's base URL.
enum UpstreamEndpoint: String, Sendable, CaseIterable {
    case chatCompletions = "/chat/completions"
    case embeddings = "/embeddings"

    /// Its position in `allCases`.
    var index: Int {
        switch self {
        case .chatCompletions: 0
        case .embeddings: 1
        }
    }
}
