import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import Synchronization

/// `POST /v1/chat/completions`: validate, route, dispatch, answer with the `x-switchyard-*` headers.
struct ChatCompletionsRoute: Sendable {
    let store: SnapshotStore
    let dispatcher: Dispatcher
    let cache: ResponseCache
    /// The cache tier replicas share, behind `cache`; nil for a single instance.
    let sharedCache: SharedCacheTier?
    let flights = SingleFlight()
    let inFlight = InFlightLimit()
    let clientLimit = ClientRateLimit()
    let auth: ClientAuth
    let clock: any WallClock
    let logger: Logger

    static let route = HTTPField.Name("x-switchyard-route")!
    static let model = HTTPField.Name("x-switchyard-model")!
    static let key = HTTPField.Name("x-switchyard-key")!
    static let attempts = HTTPField.Name("x-switchyard-attempts")!
    static let cache = HTTPField.Name("x-switchyard-cache")!
    static let affinity = HTTPField.Name("x-switchyard-affinity")!
    static let lastResort = HTTPField.Name("x-switchyard-last-resort")!

    func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        try await handle(request, context: context, prepared: nil, cancelledOnClose: false)
    }

    /// - Parameters:
    ///   - prepared: what `pipelineDecision` already read of this request, so it is not scanned and keyed twice.
    ///   - cancelledOnClose: the caller cancels this task when the client's connection closes (`ChatChannelHandler`
    ///     does, Hummingbird does not); otherwise upstream calls watch the connection themselves.
    func handle(_ request: Request, context: GatewayRequestContext, prepared: Prepared?, cancelledOnClose: Bool) async throws -> Response {
        let snapshot = prepared?.snapshot ?? store.snapshot
        // Shed load at once rather than queue without bound; a streaming answer holds its slot until it ends.
        guard let slot = inFlight.acquire(limit: snapshot.table.server.maxInFlight) else {
            return GatewayError(
                status: .tooManyRequests, message: "the gateway is at its limit of \(snapshot.table.server.maxInFlight) requests in flight; retry shortly",
                type: "rate_limit_error", code: "gateway_overloaded", retryAfter: 1
            ).response()
        }
        return try await handle(request, context: context, snapshot: snapshot, prepared: prepared, cancelledOnClose: cancelledOnClose, slot: slot)
    }

    private func handle(
        _ request: Request, context: GatewayRequestContext, snapshot: RoutingSnapshot, prepared: Prepared?, cancelledOnClose: Bool,
        slot: InFlightLimit.Slot
    ) async throws -> Response {
        let started = Monotonic.now()
        let table = snapshot.table
        if let refusal = auth.check(request.headers[.authorization]) { return refusal.response() }
        if let perMinute = table.server.clientRequestsPerMinute,
            let wait = clientLimit.admit(client: clientIdentity(request, context: context), perMinute: perMinute, at: clock.now())
        {
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            return GatewayError(
                status: .tooManyRequests, message: "this client is over its limit of \(perMinute) requests a minute; retry in \(seconds)s",
                type: "rate_limit_error", code: "client_rate_limited", retryAfter: seconds
            ).response()
        }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            return GatewayError(
                status: .unsupportedMediaType, message: "send the request as application/json (got \(type))", type: "invalid_request_error",
                code: "unsupported_media_type"
            ).response()
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: table.server.maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return GatewayError(
                status: .contentTooLarge, message: "the request body is over the limit of \(table.server.maxBodyBytes) bytes",
                type: "invalid_request_error", code: "request_too_large"
            ).response()
        }
        let summary: ChatRequestSummary
        if let prepared {
            summary = prepared.summary
        } else {
            do {
                summary = try body.withUnsafeReadableBytes { raw in
                    Result { () throws(RequestScanError) in try ChatRequestScan.scan(raw) }
                }.get()
            } catch {
                return GatewayError.badRequest(error.description).response()
            }
        }
        guard let route = table.target(named: summary.model) else {
            let choices = table.routes.map(\.name) + table.models.map(\.name)
            return GatewayError(
                status: .notFound,
                message: "the model '\(summary.model)' does not exist; use a route (\(table.routes.map(\.name).joined(separator: ", "))) or a model (\(table.models.map(\.name).joined(separator: ", ")))",
                type: "invalid_request_error", code: "model_not_found"
            ).response(headers: choices.isEmpty ? [:] : [:])
        }
        let now = clock.now()
        let chat = ChatRequest(
            body: body, summary: summary, route: route, snapshot: snapshot, affinity: request.headers[Self.affinity], deadline: now + table.retry.requestDeadline,
            deadlineMono: Monotonic.now() + UInt64(table.retry.requestDeadline.nanoseconds), channel: context.channel,
            watchesClient: !cancelledOnClose)
        // The cache: a hit answers at once; an identical request in flight is waited for; otherwise this one leads.
        let policy = CachePolicy.decide(
            cacheControl: request.headers[.cacheControl], routeEnabled: route.cacheEnabled, cacheEnabled: table.cache.enabled)
        var cacheKey: CacheKey?
        var ticket: FlightTicket?
        if policy.store {
            let scope = cacheScope(authorization: request.headers[.authorization], table)
            cacheKey = prepared?.cacheKey ?? body.withUnsafeReadableBytes { CanonicalRequest.key(body: $0, scope: scope, defaults: route.defaults) }
        }
        if let cacheKey, policy.lookup {
            if let hit = cache.lookup(cacheKey, at: now), !summary.stream || hit.replayable {
                logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: started, cache: "hit")
                return hitResponse(hit, chat)
            }
            switch flights.join(cacheKey) {
            case .leader(let leader):
                ticket = leader
                if let shared = await sharedHit(cacheKey, stream: summary.stream, at: now) {
                    leader.land(shared)
                    logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: started, cache: "hit")
                    return hitResponse(shared, chat)
                }
            case .follower(let flight):
                if let shared = await flight.wait(untilMono: chat.deadlineMono, channel: context.channel), !summary.stream || shared.replayable {
                    cache.countHit()
                    logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: started, cache: "hit")
                    return hitResponse(shared, chat)
                }
            }
        }
        if cacheKey != nil { cache.countMiss() } else { cache.countBypass() }
        let cacheHeader = policy.headerWhenNotHit

        let plan = snapshot.plan(
            route, PlanRequest(estimatedPromptTokens: summary.estimatedPromptTokens, maxTokens: summary.maxTokens, affinity: chat.affinity),
            at: now)
        if summary.stream {
            return await stream(chat, plan: plan, started: started, cacheKey: cacheKey, ticket: ticket, cacheHeader: cacheHeader, slot: slot)
        }
        switch await dispatcher.complete(chat, plan: plan) {
        case .answered(let answer):
            if let cacheKey {
                let stored = CachedAnswer.fromCompletion(
                    body: Array(answer.body.readableBytesView), modelName: table.models[answer.model].name, keyLabel: table.keys[answer.key].label)
                if let stored { keep(stored, for: cacheKey, table) }
                ticket?.land(stored)
            }
            var headers = headers(chat, model: answer.model, key: answer.key, attempts: answer.attempts, cache: cacheHeader)
            headers[.contentType] = "application/json"
            logRequest(chat, status: answer.status, model: answer.model, key: answer.key, attempts: answer.attempts, started: started, cache: cacheHeader)
            return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: answer.body))
        case .failed(let error, let attempts):
            return failed(error, attempts: attempts, chat, started: started, ticket: ticket, cacheHeader: cacheHeader)
        }
    }

    /// Another replica's answer to this request from the shared tier, now kept in the memory tier too (its TTL
    /// still counted from when it was first stored); nil without replicas, on a miss, or when a stream cannot
    /// replay it.
    private func sharedHit(_ key: CacheKey, stream: Bool, at now: Timestamp) async -> CachedAnswer? {
        guard let sharedCache, let entry = await sharedCache.lookup(key, at: now), !stream || entry.answer.replayable else { return nil }
        cache.store(entry.answer, for: key, at: entry.storedAt)
        cache.countHit()
        return entry.answer
    }

    /// Keeps a complete answer in the memory tier and, with replicas, in the shared one.
    private func keep(_ answer: CachedAnswer, for key: CacheKey, _ table: RoutingTable) {
        let now = clock.now()
        cache.store(answer, for: key, at: now)
        sharedCache?.add(answer, for: key, at: now, ttl: table.cache.ttl)
    }

    /// No candidate answered (before any stream output): release followers, log, and answer with the
    /// route's last resort for upstream failures, else the error.
    private func failed(
        _ error: GatewayError, attempts: Int, _ chat: ChatRequest, started: UInt64, ticket: FlightTicket?, cacheHeader: String
    ) -> Response {
        ticket?.land(nil)
        logRequest(chat, status: error.status.code, model: nil, key: nil, attempts: attempts, started: started, cache: cacheHeader, error: error.message)
        if let answer = chat.route.lastResort, error.status.code >= 500 { return lastResort(answer, chat) }
        var headers = HTTPFields()
        headers[Self.route] = chat.route.name
        headers[Self.attempts] = String(attempts)
        headers[Self.cache] = cacheHeader
        return error.response(headers: headers)
    }

    /// Who a per-client limit counts against: the client token, or the peer's address when the gateway is open.
    func clientIdentity(_ request: Request, context: GatewayRequestContext) -> String {
        if !auth.isOpen, let authorization = request.headers[.authorization] { return authorization }
        return context.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    /// Whose answers a request may see: its client token's, or everyone's with `scope: shared`.
    private func cacheScope(authorization: String?, _ table: RoutingTable) -> String {
        if table.cache.scope == .shared { return "shared" }
        guard !auth.isOpen, let authorization else { return "local" }
        return "client:" + authorization
    }

    private func hitResponse(_ hit: CachedAnswer, _ chat: ChatRequest) -> Response {
        let (headers, body) = hitParts(hit, chat)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// A hit's headers and body: the answer as JSON, or replayed as SSE for a streaming request.
    private func hitParts(_ hit: CachedAnswer, _ chat: ChatRequest) -> (HTTPFields, ByteBuffer) {
        var headers = HTTPFields()
        headers.reserveCapacity(9)
        headers[Self.route] = chat.route.name
        headers[Self.model] = hit.modelName
        headers[Self.key] = hit.keyLabel
        headers[Self.attempts] = "0"
        headers[Self.cache] = "hit"
        if chat.summary.stream {
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return (headers, ByteBuffer(bytes: hit.sseEvents))
        }
        headers[.contentType] = "application/json"
        return (headers, ByteBuffer(bytes: hit.completionJSON))
    }

    /// What `ChatChannelHandler` does with a whole request, decided without suspending.
    enum PipelineDecision {
        /// A cache hit: these headers and this body; `logHit` once it is out.
        case hit(HTTPFields, ByteBuffer, ChatRequest, started: UInt64)
        /// A plain (non-streaming) request to answer through `handle`, refusals included.
        case answer(Prepared?)
        /// A stream, or a request whose connection handling the full path owns: pass it on.
        case passOn
    }

    /// What `pipelineDecision` read of a request it hands to `handle`: the snapshot it read it under, the
    /// scan, and the cache key when it made one (the same `handle` would make, under the same snapshot).
    struct Prepared: Sendable {
        let snapshot: RoutingSnapshot
        let summary: ChatRequestSummary
        var cacheKey: CacheKey?
    }

    /// Hits are answered at once; other plain requests go through `handle` on the connection's event loop;
    /// streams and `Connection`-header requests are left to the full path. Anything `handle` would count or
    /// refuse first (a client rate limit, a bad token, a body over the limit) gets no cache lookup here.
    func pipelineDecision(head: HTTPRequest, body: ByteBuffer, channel: any Channel) -> PipelineDecision {
        let started = Monotonic.now()
        let snapshot = store.snapshot
        let fields = head.headerFields
        guard fields[.connection] == nil else { return .passOn }
        let scanned = body.withUnsafeReadableBytes { raw in Result { () throws(RequestScanError) in try ChatRequestScan.scan(raw) } }
        guard case .success(let summary) = scanned else { return .answer(nil) }
        var prepared = Prepared(snapshot: snapshot, summary: summary)
        // Not answered from the cache: a stream passes on, a plain request goes to `handle` with what was read.
        var notFound: PipelineDecision { summary.stream ? .passOn : .answer(prepared) }
        let table = snapshot.table
        guard table.cache.enabled, table.server.clientRequestsPerMinute == nil, body.readableBytes <= table.server.maxBodyBytes,
            auth.check(fields[.authorization]) == nil, let route = table.target(named: summary.model)
        else { return notFound }
        if let type = fields[.contentType], !type.lowercased().hasPrefix("application/json") { return notFound }
        let policy = CachePolicy.decide(cacheControl: fields[.cacheControl], routeEnabled: route.cacheEnabled, cacheEnabled: table.cache.enabled)
        guard policy.lookup, policy.store else { return notFound }
        let scope = cacheScope(authorization: fields[.authorization], table)
        let now = clock.now()
        guard let key = body.withUnsafeReadableBytes({ CanonicalRequest.key(body: $0, scope: scope, defaults: route.defaults) }) else {
            return notFound
        }
        prepared.cacheKey = key
        guard let hit = cache.lookup(key, at: now), !summary.stream || hit.replayable else { return notFound }
        let chat = ChatRequest(
            body: body, summary: summary, route: route, snapshot: snapshot, affinity: fields[Self.affinity], deadline: now + table.retry.requestDeadline,
            deadlineMono: started + UInt64(table.retry.requestDeadline.nanoseconds), channel: channel)
        let (headers, answer) = hitParts(hit, chat)
        return .hit(headers, answer, chat, started: started)
    }

    /// Logs and counts a hit `pipelineDecision` found, after its answer went out: the log line's write and
    /// the metrics stay off the client's wait.
    func logHit(_ chat: ChatRequest, started: UInt64) {
        logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: started, cache: "hit")
    }

    private func stream(
        _ chat: ChatRequest, plan: RoutePlan, started: UInt64, cacheKey: CacheKey?, ticket: FlightTicket?, cacheHeader: String,
        slot: InFlightLimit.Slot
    ) async -> Response {
        switch await dispatcher.startStream(chat, plan: plan) {
        case .failed(let error, let attempts):
            return failed(error, attempts: attempts, chat, started: started, ticket: ticket, cacheHeader: cacheHeader)
        case .started(let session):
            var headers = headers(chat, model: session.model, key: session.key, attempts: session.walk.attempts, cache: cacheHeader)
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            let dispatcher = self.dispatcher
            let route = self
            let slot = slot
            let end = StreamEnd { ending in
                slot.release()
                session.events.cancel()
                let answer = cacheKey == nil ? nil : Dispatcher.answer(of: session, ending: ending)
                if let cacheKey, let answer { route.keep(answer, for: cacheKey, chat.snapshot.table) }
                ticket?.land(answer)
                let status = ending == .completed ? 200 : ending == .clientGone ? GatewayError.clientClosed.status.code : 502
                route.logRequest(
                    chat, status: status, model: session.model, key: session.key, attempts: session.walk.attempts,
                    started: started, cache: cacheHeader, error: ending == .completed ? nil : "stream \(ending)",
                    continuations: session.continuations)
            }
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    let ending = await dispatcher.relay(session, to: &writer)
                    // A client that has gone cannot be finished for; the bookkeeping runs either way.
                    if ending != .clientGone { try? await writer.finish(nil) }
                    end.run(ending)
                })
        }
    }

    private func headers(_ chat: ChatRequest, model: ModelID, key: KeyID, attempts: Int, cache: String) -> HTTPFields {
        var headers = HTTPFields()
        headers.reserveCapacity(8)
        headers[Self.route] = chat.route.name
        headers[Self.model] = chat.snapshot.table.models[model].name
        headers[Self.key] = chat.snapshot.table.keys[key].label
        headers[Self.attempts] = String(attempts)
        headers[Self.cache] = cache
        return headers
    }

    /// The route's fixed answer, for apps that prefer a polite message to an error.
    private func lastResort(_ text: String, _ chat: ChatRequest) -> Response {
        var headers = HTTPFields()
        headers[Self.route] = chat.route.name
        headers[Self.lastResort] = "true"
        headers[Self.cache] = "bypass"
        let created = Int(clock.now().secondsSinceEpoch)
        if chat.summary.stream {
            headers[.contentType] = "text/event-stream"
            let chunk = #"{"id":"switchyard-last-resort","object":"chat.completion.chunk","created":\#(created),"model":\#(JSONText.quoted(chat.route.name)),"choices":[{"index":0,"delta":{"role":"assistant","content":\#(JSONText.quoted(text))},"finish_reason":"stop"}]}"#
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "data: \(chunk)\n\ndata: [DONE]\n\n")))
        }
        headers[.contentType] = "application/json"
        let body = #"{"id":"switchyard-last-resort","object":"chat.completion","created":\#(created),"model":\#(JSONText.quoted(chat.route.name)),"choices":[{"index":0,"message":{"role":"assistant","content":\#(JSONText.quoted(text))},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}"#
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// One line per request. Preformatted rather than metadata: building and sorting a metadata dictionary
    /// per request cost more than the routing decision itself.
    func logRequest(
        _ chat: ChatRequest, status: Int, model: ModelID?, key: KeyID?, attempts: Int, started: UInt64, cache: String,
        error: String? = nil, continuations: Int = 0
    ) {
        dispatcher.activity.request(status: status, attempts: attempts, cacheHit: cache == "hit", continuations: continuations)
        let table = chat.snapshot.table
        let micros = (Monotonic.now() &- started) / 1000
        dispatcher.metrics?.request(
            route: chat.route.name, model: model.map { table.models[$0].name } ?? "-", key: key.map { table.keys[$0].label } ?? "-", status: status,
            cache: cache, seconds: Double(micros) / 1e6, attempts: attempts, continuations: continuations)
        guard logger.logLevel <= .info else { return }
        var line = "request route=\(chat.route.name) model=\(model.map { table.models[$0].name } ?? "-")"
        line += " key=\(key.map { table.keys[$0].label } ?? "-") attempts=\(attempts) cache=\(cache) status=\(status)"
        line += " stream=\(chat.summary.stream) latency_ms=\(micros / 1000).\(String(micros % 1000 / 100))"
        if continuations > 0 { line += " continuations=\(continuations)" }
        if let error { line += " error=\"\(error.prefix(500))\"" }
        logger.info("\(line)")
    }
}

/// Bearer tokens apps must send, from the variable named by `client_tokens_env`. None configured: open,
/// and the server binds loopback only.
public struct ClientAuth: Sendable {
    public let tokens: Set<String>

    public init(tokens: Set<String>) {
        self.tokens = tokens
    }

    public static func fromEnvironment(_ table: RoutingTable, environment: [String: String]) -> ClientAuth {
        guard let name = table.server.clientTokensEnv, let value = environment[name] else { return ClientAuth(tokens: []) }
        return ClientAuth(tokens: Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }))
    }

    public var isOpen: Bool { tokens.isEmpty }

    func check(_ authorization: String?) -> GatewayError? {
        guard !tokens.isEmpty else { return nil }
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            return GatewayError(status: .unauthorized, message: "send a client token as Authorization: Bearer TOKEN", type: "invalid_request_error", code: "invalid_api_key")
        }
        let token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard tokens.contains(token) else {
            return GatewayError(status: .unauthorized, message: "the client token is not recognised", type: "invalid_request_error", code: "invalid_api_key")
        }
        return nil
    }
}

/// A stream's last bookkeeping (its in-flight slot, cache, waiting followers, log line), run once: by the body
/// writer when the stream ends, or, if the client left before Hummingbird started the body (the head's write
/// failed, so the writer never runs), when the response is dropped.
final class StreamEnd: Sendable {
    private let finish: @Sendable (Dispatcher.StreamEnding) -> Void
    private let done = Atomic<Bool>(false)

    init(_ finish: @escaping @Sendable (Dispatcher.StreamEnding) -> Void) {
        self.finish = finish
    }

    func run(_ ending: Dispatcher.StreamEnding) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finish(ending)
    }

    deinit { run(.clientGone) }
}
