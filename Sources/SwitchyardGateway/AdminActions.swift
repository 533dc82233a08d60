import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore

/// Operator actions: reset, disable and enable keys by label, and explain a request without sending it.
struct AdminActions: Sendable {
    let store: SnapshotStore
    let admin: AdminAuth
    let activity: GatewayActivity
    let clock: any WallClock
    let logger: Logger

    func register(on router: Router<GatewayRequestContext>) {
        router.post("/admin/keys/reset") { request, context in try keyAction(request, context, allowAll: true) { $0.reset(key: $1, at: $2) } }
        router.post("/admin/keys/disable") { request, context in
            try keyAction(request, context, allowAll: false) { health, key, now in key.map { health.disable(key: $0, at: now) } ?? [] }
        }
        router.post("/admin/keys/enable") { request, context in
            try keyAction(request, context, allowAll: false) { health, key, now in key.map { health.enable(key: $0, at: now) } ?? [] }
        }
        router.post("/admin/explain") { request, context in try await explain(request, context) }
    }

    private func keyAction(
        _ request: Request, _ context: GatewayRequestContext, allowAll: Bool, _ action: (HealthBook, KeyID?, Timestamp) -> [HealthEvent]
    ) throws -> Response {
        if let refusal = admin.check(request, context: context) { return refusal.response() }
        let snapshot = store.snapshot
        let label = request.uri.queryParameters.get("key")
        var keyID: KeyID?
        if let label {
            guard let key = snapshot.table.key(labelled: label) else {
                let labels = snapshot.table.keys.map(\.label).joined(separator: ", ")
                return GatewayError(status: .notFound, message: "no key labelled '\(label)'; keys: \(labels)", type: "invalid_request_error", code: "key_not_found").response()
            }
            keyID = key.id
        } else if !allowAll {
            return GatewayError.badRequest("name the key: ?key=LABEL (e.g. openrouter#2)").response()
        }
        let events = action(snapshot.health, keyID, clock.now())
        activity.report(events, logger: logger)
        let body = #"{"changed":[\#(events.map { JSONText.quoted($0.description) }.joined(separator: ","))]}"#
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// The planner's ordered candidates and reasons for a chat request; nothing is sent upstream.
    private func explain(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        if let refusal = admin.check(request, context: context) { return refusal.response() }
        var request = request
        let body = try await request.collectBody(upTo: store.snapshot.table.server.maxBodyBytes)
        let summary: ChatRequestSummary
        do {
            summary = try body.withUnsafeReadableBytes { raw in Result { () throws(RequestScanError) in try ChatRequestScan.scan(raw) } }.get()
        } catch {
            return GatewayError.badRequest(error.description).response()
        }
        let snapshot = store.snapshot
        guard let route = snapshot.table.target(named: summary.model) else {
            return GatewayError(status: .notFound, message: "the model '\(summary.model)' does not exist", type: "invalid_request_error", code: "model_not_found").response()
        }
        let now = clock.now()
        let planRequest = PlanRequest(
            estimatedPromptTokens: summary.estimatedPromptTokens, maxTokens: summary.maxTokens,
            affinity: request.headers[ChatCompletionsRoute.affinity])
        let plan = snapshot.plan(route, planRequest, at: now, advance: false)
        let explanation = PlanExplanation(plan: plan, route: route, request: planRequest, table: snapshot.table, health: snapshot.health, at: now)
        let candidates = explanation.candidates.map { c in
            #"{"rank":\#(c.rank),"model":\#(JSONText.quoted(c.model)),"upstream":\#(JSONText.quoted(c.upstream)),"keys":[\#(c.keys.map { JSONText.quoted($0) }.joined(separator: ","))],"key_order":\#(JSONText.quoted(c.keyOrder)),"why":\#(JSONText.quoted(c.why))}"#
        }
        let skipped = explanation.skipped.map { #"{"model":\#(JSONText.quoted($0.model)),"reason":\#(JSONText.quoted($0.reason))}"# }
        let json = #"{"route":\#(JSONText.quoted(route.name)),"prompt_tokens":\#(explanation.promptTokens),"needed_tokens":\#(explanation.neededTokens),"candidates":[\#(candidates.joined(separator: ","))],"skipped":[\#(skipped.joined(separator: ","))]}"#
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
