import HTTPTypes
import NIOCore
import SwitchyardCore

/// A request admitted for an upstream answer, with everything admission decided about it.
struct Admitted: Sendable {
    let chat: ChatRequest
    /// When the request began (monotonic nanoseconds), for its log line.
    let started: UInt64
    /// The cache key, when the answer may be stored.
    let cacheKey: CacheKey?
    /// Held while this request leads identical ones: they wait for its answer.
    var ticket: FlightTicket?
    /// `x-switchyard-cache` of an answer that was not a hit: `miss` or `bypass`.
    let cacheHeader: String
    /// Its place among the requests in flight, given back when the answer is done.
    let slot: InFlightLimit.Slot
}

/// What admission decided, without suspending.
enum Admission: Sendable {
    /// Refused (an error in OpenAI's shape), already logged where the full path logs refusals: nowhere.
    case refused(PlainAnswer)
    /// Answered from the cache; `logHit` once it is out.
    case hit(PlainAnswer, ChatRequest, started: UInt64)
    /// An identical request is in flight: wait for its answer, or go upstream if it brings none.
    case follow(Flight, Admitted)
    /// Go upstream.
    case dispatch(Admitted)

    /// The prompt's estimate made at admission; 0 for a refusal.
    var estimatedPromptTokens: Int {
        switch self {
        case .refused: 0
        case .hit(_, let chat, _): chat.summary.estimatedPromptTokens
        case .follow(_, let admitted), .dispatch(let admitted): admitted.chat.summary.estimatedPromptTokens
        }
    }
}

extension ChatCompletionsRoute {
    /// The refusals that need only the head, in this order: the gateway full, a bad token, a client over its
    /// rate, a body that is not JSON. Otherwise the request's place among those in flight.
    func admitHead(_ fields: AdmissionHeaders, client: @autoclosure () -> String, _ table: RoutingTable) -> Result<InFlightLimit.Slot, GatewayError> {
        // Shed load at once rather than queue without bound; a streaming answer holds its slot until it ends.
        guard let slot = inFlight.acquire(limit: table.server.maxInFlight) else {
            return .failure(
                GatewayError(
                    status: .tooManyRequests, message: "the gateway is at its limit of \(table.server.maxInFlight) requests in flight; retry shortly",
                    type: "rate_limit_error", code: "gateway_overloaded", retryAfter: 1))
        }
        if let refusal = auth.check(fields.authorization) { return .failure(refusal) }
        if let perMinute = table.server.clientRequestsPerMinute, let wait = clientLimit.admit(client: client(), perMinute: perMinute, at: clock.now()) {
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            return .failure(
                GatewayError(
                    status: .tooManyRequests, message: "this client is over its limit of \(perMinute) requests a minute; retry in \(seconds)s",
                    type: "rate_limit_error", code: "client_rate_limited", retryAfter: seconds))
        }
        if let type = fields.contentType, !type.hasPrefixIgnoringASCIICase("application/json") {
            return .failure(
                GatewayError(
                    status: .unsupportedMediaType, message: "send the request as application/json (got \(type))", type: "invalid_request_error",
                    code: "unsupported_media_type"))
        }
        return .success(slot)
    }

    /// Everything decided once the whole body is in: its scan, the route, the cache, identical
    /// requests in flight.
    func admitBody(
        _ fields: AdmissionHeaders, body: ByteBuffer, snapshot: RoutingSnapshot, channel: (any Channel)?, watchesClient: Bool,
        slot: InFlightLimit.Slot, started: UInt64, endpoint: UpstreamEndpoint = .chatCompletions
    ) -> Admission {
        let table = snapshot.table
        let summary: ChatRequestSummary
        do {
            summary = try body.withUnsafeReadableBytes { raw in
                Result { () throws(RequestScanError) in
                    endpoint == .embeddings ? try EmbeddingRequestScan.scan(raw) : try ChatRequestScan.scan(raw)
                }
            }.get()
        } catch {
            return .refused(PlainAnswer(GatewayError.badRequest(error.description)))
        }
        guard let route = table.target(named: summary.model) else {
            return .refused(
                PlainAnswer(
                    GatewayError(
                        status: .notFound,
                        message:
                            "the model '\(summary.model)' does not exist; use a route (\(table.routes.map(\.name).joined(separator: ", "))) or a model (\(table.models.map(\.name).joined(separator: ", ")))",
                        type: "invalid_request_error", code: "model_not_found")))
        }
        if let wrongKind = Self.wrongKind(route, for: endpoint) { return .refused(PlainAnswer(wrongKind)) }
        let now = clock.now()
        let chat = ChatRequest(
            body: body, summary: summary, route: route, snapshot: snapshot, affinity: fields.affinity, deadline: now + table.retry.requestDeadline,
            deadlineMono: Monotonic.now() + UInt64(table.retry.requestDeadline.nanoseconds), channel: channel, watchesClient: watchesClient,
            endpoint: endpoint)
        // The cache: a hit answers at once; an identical request in flight is waited for; otherwise this one leads.
        let policy = CachePolicy.decide(cacheControl: fields.cacheControl, routeEnabled: route.cacheEnabled, cacheEnabled: table.cache.enabled)
        var cacheKey: CacheKey?
        if policy.store {
            let scope = cacheScope(authorization: fields.authorization, table)
            cacheKey = body.withUnsafeReadableBytes { CanonicalRequest.key(body: $0, scope: scope, defaults: route.defaults) }
        }
        var admitted = Admitted(chat: chat, started: started, cacheKey: cacheKey, ticket: nil, cacheHeader: policy.headerWhenNotHit, slot: slot)
        guard let cacheKey, policy.lookup else { return .dispatch(admitted) }
        if let hit = cache.lookup(cacheKey, at: now), !summary.stream || hit.replayable {
            return .hit(hitAnswer(hit, chat), chat, started: started)
        }
        switch flights.join(cacheKey) {
        case .leader(let ticket):
            admitted.ticket = ticket
            return .dispatch(admitted)
        case .follower(let flight):
            return .follow(flight, admitted)
        }
    }

    /// The 400 for a route whose models answer the other endpoint: an embedding model cannot chat, nor the reverse.
    static func wrongKind(_ route: Route, for endpoint: UpstreamEndpoint) -> GatewayError? {
        switch (route.kind, endpoint) {
        case (.chat, .chatCompletions), (.embedding, .embeddings): return nil
        case (.embedding, .chatCompletions):
            return .badRequest("'\(route.name)' is an embedding route or model; send it to POST /v1/embeddings", code: "wrong_endpoint")
        case (.chat, .embeddings):
            return .badRequest("'\(route.name)' is a chat route or model; embeddings need a route of `kind: embedding` models", code: "wrong_endpoint")
        }
    }

    /// Counts the cache's part and plans the candidates of a request about to go upstream.
    func plan(_ admitted: Admitted) -> RoutePlan {
        if admitted.cacheKey != nil { cache.countMiss() } else { cache.countBypass() }
        let chat = admitted.chat
        let summary = chat.summary
        return chat.snapshot.plan(
            chat.route, PlanRequest(estimatedPromptTokens: summary.estimatedPromptTokens, maxTokens: summary.maxTokens, affinity: chat.affinity),
            at: clock.now())
    }

    /// Whose answers a request may see: its client token's, or everyone's with `scope: shared`.
    func cacheScope(authorization: String?, _ table: RoutingTable) -> String {
        if table.cache.scope == .shared { return "shared" }
        guard !auth.isOpen, let authorization else { return "local" }
        return "client:" + authorization
    }

    /// Who a per-client limit counts against: the client token, or the peer's address when the gateway is open.
    func clientIdentity(_ fields: AdmissionHeaders, channel: (any Channel)?) -> String {
        if !auth.isOpen, let authorization = fields.authorization { return authorization }
        return channel?.remoteAddress?.ipAddress ?? "unknown"
    }

    /// Logs and counts a hit after its answer went out: the log line's write and the metrics stay off the
    /// client's wait.
    func logHit(_ chat: ChatRequest, started: UInt64) {
        logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: started, cache: "hit")
    }
}
