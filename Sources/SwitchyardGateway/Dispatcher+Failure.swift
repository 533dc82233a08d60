import HTTPTypes
import SwitchyardCore

/// What one attempt's failure looked like, for the 502 message and the logs (labels only, never keys).
struct AttemptNote: Sendable {
    var key: String
    var model: String
    var outcome: Outcome

    var summary: String {
        let status = outcome.status.map { "\($0) " } ?? ""
        let message = outcome.message.map { ": \($0.prefix(160))" } ?? ""
        return "\(key) on \(model): \(status)\(outcome.kind.rawValue)\(message)"
    }
}

/// What a client hears when no candidate answered, or none could be tried: statuses and messages that list the
/// attempts by key label and reason.
extension Dispatcher {
    /// The error a client hears when no candidate answered.
    func failure(_ walk: Walk, _ request: ChatRequest) -> GatewayError {
        let snapshot = request.snapshot
        if let fault = walk.lastClientFault {
            let status = HTTPResponse.Status(code: fault.status ?? 400)
            let code = fault.kind == .contentRefused ? "content_policy_violation" : "invalid_request"
            return GatewayError(
                status: status, message: fault.message ?? "the upstream refused the request", type: "invalid_request_error", code: code)
        }
        if walk.gaveUp == .cancelled {
            return .clientClosed
        }
        if walk.gaveUp == .deadline {
            return GatewayError(
                status: .gatewayTimeout,
                message: "the request deadline (\(snapshot.table.retry.requestDeadline.configText)) passed after \(walk.attempts) attempts"
                    + Self.list(walk.notes),
                type: "timeout", code: "deadline_exceeded")
        }
        // Nothing tried, or every try was told to come back later: the client hears when, not a 502.
        if walk.attempts == 0 || walk.notes.allSatisfy({ $0.outcome.kind == .rateLimited || $0.outcome.kind == .accountExhausted }) {
            return unavailable(request, plan: walk.cursor.plan, notes: walk.notes)
        }
        return GatewayError(
            status: .badGateway, message: "every candidate failed after \(walk.attempts) attempts" + Self.list(walk.notes),
            type: "upstream_error", code: "all_candidates_failed")
    }

    /// 503 when nothing is usable now, with the earliest recovery as Retry-After; 400 when nothing could ever fit.
    func unavailable(_ request: ChatRequest, plan: RoutePlan, notes: [AttemptNote] = []) -> GatewayError {
        let snapshot = request.snapshot
        let table = snapshot.table
        let contextOnly = !plan.skipped.isEmpty && plan.skipped.allSatisfy {
            if case .contextTooSmall = $0.reason { return true }
            if case .requestTooLarge = $0.reason { return true }
            return false
        }
        if plan.candidates.isEmpty, contextOnly {
            let largest = plan.skipped.compactMap { skip -> Int? in
                if case .contextTooSmall(let usable) = skip.reason { return usable }
                return nil
            }.max() ?? 0
            return GatewayError(
                status: .badRequest,
                message: "the request needs about \(plan.neededTokens) tokens (prompt + max_tokens); the largest model of '\(plan.route)' accepts \(largest)",
                type: "invalid_request_error", code: "context_length_exceeded")
        }
        let now = clock.now()
        let recovery = snapshot.health.earliestUsable(models: plan.modelsThatMayServe, at: now)
        let seconds = recovery.map { max(1, Int(($0 - now).seconds.rounded(.up))) } ?? 30
        let reasons = plan.skipped.map { "\(table.models[$0.model].name): \(Self.describe($0.reason))" }
        return GatewayError(
            status: .serviceUnavailable,
            message: "no model of '\(plan.route)' is usable right now" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))")
                + "; retry in \(seconds)s" + (notes.isEmpty ? "" : "; attempts" + Self.list(notes)),
            type: "service_unavailable", code: "no_usable_candidate", retryAfter: seconds)
    }

    static func describe(_ reason: SkipReason) -> String {
        switch reason {
        case .retired: "retired by its provider"
        case .contextTooSmall(let usable): "context too small (\(usable) usable)"
        case .requestTooLarge(let limit): "request over its limit of \(limit) tokens"
        case .modelUnavailable: "model set aside"
        case .noKeys: "no keys configured"
        case .noUsableKey: "no usable key"
        case .rateLimitedOnEveryKey: "rate-limited on every key"
        }
    }

    static func list(_ notes: [AttemptNote]) -> String {
        notes.isEmpty ? "" : ": " + notes.map(\.summary).joined(separator: "; ")
    }
}
