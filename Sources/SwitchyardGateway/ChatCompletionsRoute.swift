import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import Synchronization

/// `POST /v1/chat/completions`: validate, route, dispatch, answer with the `x-switchyard-*` headers.
///
/// A class: one shared by the router and every connection's handler, and held by each answer being made, which a
/// reference makes one retain where a struct of these fields made a dozen.
final class ChatCompletionsRoute: Sendable {
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

    init(
        store: SnapshotStore, dispatcher: Dispatcher, cache: ResponseCache, sharedCache: SharedCacheTier?, auth: ClientAuth, clock: any WallClock,
        logger: Logger
    ) {
        self.store = store
        self.dispatcher = dispatcher
        self.cache = cache
        self.sharedCache = sharedCache
        self.auth = auth
        self.clock = clock
        self.logger = logger
    }

    static let route = HTTPField.Name("x-switchyard-route")!
    static let model = HTTPField.Name("x-switchyard-model")!
    static let key = HTTPField.Name("x-switchyard-key")!
    static let attempts = HTTPField.Name("x-switchyard-attempts")!
    static let cache = HTTPField.Name("x-switchyard-cache")!
    static let affinity = HTTPField.Name("x-switchyard-affinity")!
    static let lastResort = HTTPField.Name("x-switchyard-last-resort")!

    /// Whether a plain request's first attempt can be made on its client connection's event loop: not when a
    /// shared store may have to be asked first (a quota reservation, the shared cache tier).
    var answersOnLoop: Bool { sharedCache == nil && dispatcher.quotas == nil }

    /// Hummingbird's path for `endpoint` (chat or embeddings, which admission, the walk and the cache serve alike):
    /// requests with a `Connection` header, which the channel handler passes on.
    func handle(_ request: Request, context: GatewayRequestContext, endpoint: UpstreamEndpoint = .chatCompletions) async throws -> Response {
        let started = Monotonic.now()
        let snapshot = store.snapshot
        let table = snapshot.table
        let fields = AdmissionHeaders(request.headers)
        let slot: InFlightLimit.Slot
        switch admitHead(fields, client: clientIdentity(fields, channel: context.channel), table) {
        case .failure(let refusal): return refusal.response()
        case .success(let admitted): slot = admitted
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
        let admission = admitBody(
            fields, body: body, snapshot: snapshot, channel: context.channel, watchesClient: true, slot: slot, started: started,
            endpoint: endpoint)
        return await respond(admission).response
    }

    /// An admitted request's answer, made in a task: for Hummingbird's path, and for what the channel handler does
    /// not answer on its loop (a stream, one waiting for an identical request, or one with a shared store to ask;
    /// the handler cancels its task when the client's connection closes).
    func respond(_ admission: Admission) async -> Dispatched {
        switch admission {
        case .refused(let answer): return .plain(answer)
        case .hit(let answer, let chat, let started):
            logHit(chat, started: started)
            return .plain(answer)
        case .follow(let flight, let admitted): return await follow(flight, admitted)
        case .dispatch(let admitted): return await dispatch(admitted)
        }
    }

    /// What an admitted request's upstream part gave: a whole answer, or a stream's response.
    enum Dispatched {
        case plain(PlainAnswer)
        case stream(Response)

        var response: Response {
            switch self {
            case .plain(let answer): answer.response
            case .stream(let response): response
            }
        }
    }

    /// Waits for the identical request in flight; its answer is a hit, its failure sends this one upstream.
    func follow(_ flight: Flight, _ admitted: Admitted) async -> Dispatched {
        let chat = admitted.chat
        if let shared = await flight.wait(untilMono: chat.deadlineMono, channel: chat.channel), !chat.summary.stream || shared.replayable {
            cache.countHit()
            logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: admitted.started, cache: "hit")
            return .plain(hitAnswer(shared, chat))
        }
        return await dispatch(admitted)
    }

    /// Upstream, after a last look in the replicas' shared cache tier when this request leads.
    func dispatch(_ admitted: Admitted) async -> Dispatched {
        let chat = admitted.chat
        if let ticket = admitted.ticket, let cacheKey = admitted.cacheKey, let shared = await sharedHit(cacheKey, stream: chat.summary.stream, at: clock.now()) {
            ticket.land(shared)
            logRequest(chat, status: 200, model: nil, key: nil, attempts: 0, started: admitted.started, cache: "hit")
            return .plain(hitAnswer(shared, chat))
        }
        let plan = plan(admitted)
        if chat.summary.stream { return await stream(admitted, plan: plan) }
        return .plain(finished(await dispatcher.complete(chat, plan: plan), admitted))
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

    /// What `ChatChannelHandler` does with a whole request, decided without suspending.
    enum PipelineDecision {
        /// Admitted or refused here: answered on the connection, plain or streaming.
        case admitted(Admission)
        /// A request whose connection handling the full path owns (it carries a `Connection` header): pass it on.
        case passOn
    }

    /// Every request is admitted here (plain ones answered on the connection's loop when they can be, streams
    /// written to the connection by their task), except those with a `Connection` header, which pass on.
    func pipelineDecision(_ fields: AdmissionHeaders, body: ByteBuffer, channel: any Channel, endpoint: UpstreamEndpoint) -> PipelineDecision {
        let started = Monotonic.now()
        let snapshot = store.snapshot
        guard fields.connection == nil else { return .passOn }
        switch admitHead(fields, client: clientIdentity(fields, channel: channel), snapshot.table) {
        case .failure(let refusal): return .admitted(.refused(PlainAnswer(refusal)))
        case .success(let slot):
            return .admitted(
                admitBody(fields, body: body, snapshot: snapshot, channel: channel, watchesClient: false, slot: slot, started: started, endpoint: endpoint))
        }
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
        guard let authorization, authorization.hasPrefixIgnoringASCIICase("bearer ") else {
            return GatewayError(status: .unauthorized, message: "send a client token as Authorization: Bearer TOKEN", type: "invalid_request_error", code: "invalid_api_key")
        }
        let token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        guard tokens.contains(token) else {
            return GatewayError(status: .unauthorized, message: "the client token is not recognised", type: "invalid_request_error", code: "invalid_api_key")
        }
        return nil
    }
}
