import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore

/// Builds the gateway's HTTP application over a snapshot store and an upstream client.
public struct Gateway: Sendable {
    public let store: SnapshotStore
    public let upstream: UpstreamClient
    public let auth: ClientAuth
    public let admin: AdminAuth
    public let cache: ResponseCache
    public let clock: any WallClock
    public let logger: Logger
    /// Set when the table comes from a file that can be reloaded.
    public var reloader: ConfigReloader?
    public let activity = GatewayActivity()
    public let metrics = GatewayMetrics()
    /// Upstream requests, failures and tokens per day, key and model.
    public let usage = UsageLedger()
    /// Set when health and usage are kept in a state file.
    public var persister: StatePersister?

    public init(
        store: SnapshotStore, upstream: UpstreamClient, auth: ClientAuth, admin: AdminAuth = AdminAuth(token: nil),
        clock: any WallClock = SystemClock(), logger: Logger
    ) {
        self.store = store
        self.upstream = upstream
        self.auth = auth
        self.admin = admin
        let settings = store.snapshot.table.cache
        cache = ResponseCache(limits: .init(ttl: settings.ttl, maxEntries: settings.maxEntries, maxBytes: settings.maxBytes))
        self.clock = clock
        self.logger = logger
    }

    /// The chat route, shared by the router and each connection's `ChatChannelHandler`.
    func chatRoute() -> ChatCompletionsRoute {
        ChatCompletionsRoute(
            store: store, dispatcher: Dispatcher(
                upstream: upstream, clock: clock, logger: logger, activity: activity, metrics: metrics, usage: usage, quotas: persister?.quotaGate),
            cache: cache, sharedCache: persister?.cacheTier, auth: auth,
            clock: clock, logger: logger)
    }

    public func router() -> Router<GatewayRequestContext> {
        router(chat: chatRoute())
    }

    func router(chat: ChatCompletionsRoute) -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.post("/v1/chat/completions") { request, context in try await chat.handle(request, context: context) }
        router.post("/v1/embeddings") { request, context in try await chat.handle(request, context: context, endpoint: .embeddings) }
        let messages = MessagesRoute(chat: chat)
        router.post("/v1/messages") { request, context in try await messages.handle(request, context: context) }
        router.post("/v1/messages/count_tokens") { request, context in try await messages.countTokens(request, context: context) }
        router.get("/v1/models") { [store, auth] request, _ -> Response in
            if let refusal = auth.check(request.headers[.authorization]) { return refusal.response() }
            return Self.models(store.snapshot.table)
        }
        router.post("/admin/cache/clear") { [admin, cache, persister] request, context -> Response in
            if let refusal = admin.check(request, context: context) { return refusal.response() }
            let cleared = cache.clear()
            do {
                try await persister?.cacheTier?.clear()
            } catch {
                return GatewayError(
                    status: .serviceUnavailable, message: "this replica's cache was cleared, the shared tier was not: \(error)", type: "server_error",
                    code: "shared_store_unavailable"
                ).response()
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"cleared":\#(cleared)}"#)))
        }
        router.get("/admin/stats") { [store, admin, cache, reloader, clock, activity, persister] request, context -> Response in
            if let refusal = admin.check(request, context: context) { return refusal.response() }
            let now = clock.now()
            let state = await AdminStats.StateStatus(persister, now: now)
            let body = AdminStats.json(
                snapshot: store.snapshot, cache: cache.stats, reload: reloader?.status, activity: activity.totals, latency: activity,
                state: state, now: now)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/admin/reload") { [admin, reloader] request, context -> Response in
            if let refusal = admin.check(request, context: context) { return refusal.response() }
            guard let reloader else {
                return GatewayError(status: .conflict, message: "this gateway was not started from a file", type: "invalid_request_error", code: "no_config_file").response()
            }
            let problems = reloader.reload(reason: "POST /admin/reload")
            let list = problems.map { JSONText.quoted($0.description) }.joined(separator: ",")
            return Response(
                status: problems.isEmpty ? .ok : .unprocessableContent, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"applied":\#(problems.isEmpty),"problems":[\#(list)]}"#)))
        }
        router.get("/admin/usage") { [admin, usage, persister, clock] request, context -> Response in
            if let refusal = admin.check(request, context: context) { return refusal.response() }
            let daysText = request.uri.queryParameters["days"].map(String.init) ?? "7"
            guard let days = Int(daysText), (1...366).contains(days) else {
                return GatewayError(status: .badRequest, message: "days must be a whole number from 1 to 366", type: "invalid_request_error", code: "invalid_days")
                    .response()
            }
            let rows: [UsageRow]
            do {
                rows = try await persister?.usage(days: days) ?? usage.totals(days: days, at: clock.now())
            } catch {
                return GatewayError(status: .internalServerError, message: "cannot read the state file: \(error)", type: "server_error", code: "state_unreadable")
                    .response()
            }
            let source = persister == nil ? "memory (since start; no state file)" : persister?.isShared == true ? "shared store (every replica)" : "state file"
            let body = #"{"days":\#(days),"since":"\#(UsageLedger.firstDay(of: days, at: clock.now()))","source":"\#(source)","usage":[\#(rows.map(\.json).joined(separator: ","))]}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        AdminActions(store: store, admin: admin, activity: activity, clock: clock, logger: logger).register(on: router)
        router.get("/admin") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: Dashboard.html)))
        }
        router.get("/metrics") { [store, cache, reloader, clock, metrics] _, _ -> Response in
            let now = clock.now()
            let shared = await AdminStats.StateStatus(persister, now: now).flatMap { $0.shared ? $0 : nil }
            let text = metrics.render(
                snapshot: store.snapshot, cache: cache.stats, reload: reloader?.status, sharedStoreUp: shared?.up, replicas: shared?.replicas ?? [],
                now: now)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        return router
    }

    /// Routes and models in OpenAI's list format, with context, speed and quality.
    static func models(_ table: RoutingTable) -> Response {
        var entries: [String] = []
        for route in table.routes {
            let models = route.rankedModels.map { JSONText.quoted(table.models[$0].name) }.joined(separator: ",")
            let context = route.models.map { table.models[$0].context }.max() ?? 0
            entries.append(
                #"{"id":\#(JSONText.quoted(route.name)),"object":"model","created":0,"owned_by":"switchyard","type":"route","kind":"\#(route.kind.rawValue)","prefer":"\#(route.prefer.rawValue)","models":[\#(models)],"context_length":\#(context)}"#
            )
        }
        for model in table.models {
            entries.append(
                #"{"id":\#(JSONText.quoted(model.name)),"object":"model","created":0,"owned_by":\#(JSONText.quoted(table.providers[model.provider].name)),"type":"model","kind":"\#(model.kind.rawValue)","upstream":\#(JSONText.quoted(model.upstream)),"context_length":\#(model.context),"speed":\#(model.speed),"quality":\#(model.quality),"prefill":\#(model.prefill)}"#
            )
        }
        let body = #"{"object":"list","data":["# + entries.joined(separator: ",") + "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
