import Foundation
import NIOCore
import NIOHTTP1

/// The faults a script asks for, answered as each provider answers them.
extension FakeHTTPHandler {
    /// Answers with the decision's fault, as the provider would (or the quota's 429, an unknown model's 404, a
    /// context too long); returns what was done, or nil when an answer is due.
    func fail(
        context: ChannelHandlerContext, head: HTTPRequestHead, request: FakeChatRequest, key: String, decision: FakeDecision
    ) -> String? {
        let b = decision.behavior
        let model = request.model
        var headers = decision.headers
        // Key and account faults come first, as real providers check auth and quota before the model.
        switch decision.fault {
        case .invalidKey:
            send(context, head, status: .unauthorized, body: FakeRender.error(
                message: "Incorrect API key provided: \(key). You can find your API key in your account settings.",
                type: "invalid_request_error", code: "invalid_api_key"))
            return "invalid_key"
        case .paymentRequired:
            send(context, head, status: .paymentRequired, body: FakeRender.openRouterError(
                code: 402, message: "Insufficient credits. Add more using https://example.invalid/credits", metadata: #"{"error_type":"payment_required"}"#))
            return "payment_required"
        case .rateLimit, .rateLimitNoRetryAfter:
            if decision.fault == .rateLimit { headers.append(("Retry-After", "\(b.retryAfterSeconds ?? 2)")) }
            send(context, head, status: .tooManyRequests, headers: headers, body: FakeRender.openRouterError(
                code: 429, message: "Rate limit exceeded: limit_rpm/\(model)", metadata: #"{"error_type":"rate_limit_exceeded"}"#))
            return decision.fault.rawValue
        case .rateLimitModel:
            let seconds = b.retryAfterSeconds ?? 2
            headers.append(("retry-after", "\(seconds)"))
            send(context, head, status: .tooManyRequests, headers: headers, body: FakeRender.error(
                message: "Rate limit reached for model `\(model)` in organization `org_fake` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in \(seconds)s.",
                type: "requests", code: "rate_limit_exceeded"))
            return "rate_limit_model"
        case .freeModelsPerMin:
            let resetMs = Int64(Date().timeIntervalSince1970 * 1000) + Int64(b.retryAfterSeconds ?? 2) * 1000
            sendOpenRouterLimit(context, head, headers, limit: 20, resetMs: resetMs, message: "Rate limit exceeded: free-models-per-min. ")
            return "free_models_per_min"
        case .upstreamRateLimited:
            headers.append(("Retry-After", "\(b.retryAfterSeconds ?? 2)"))
            let name = FakeRender.escape(model)
            send(context, head, status: .tooManyRequests, headers: headers, body: FakeRender.openRouterError(
                code: 429,
                message: "\(model) is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://example.invalid/settings/integrations",
                metadata: #"{"raw":"\#(name) is temporarily rate-limited upstream.","provider_name":"FakeProvider"}"#))
            return "upstream_rate_limited"
        case .dailyCap:
            sendOpenRouterLimit(
                context, head, headers, limit: 50, resetMs: Self.nextUTCMidnightMs(),
                message: "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day")
            return "daily_cap"
        case .reset:
            // SO_LINGER 0 turns the close into a TCP reset: the client sees ECONNRESET before any byte.
            if let provider = context.channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return "reset"
        case .hang:
            return "hang"
        default:
            break
        }
        if decision.overQuota {
            headers.append(("retry-after", "60"))
            send(context, head, status: .tooManyRequests, headers: headers, body: FakeRender.error(
                message: "Rate limit reached for model `\(model)` on requests per minute (RPM): Limit \(b.requestsPerMinute ?? 0). Please try again in 60s.",
                type: "requests", code: "rate_limit_exceeded"))
            return "quota_429"
        }
        guard let contextLength = state.script.models[model] else {
            send(context, head, status: .notFound, body: FakeRender.openRouterError(
                code: 404, message: "No endpoints found for \(model).", metadata: #"{"error_type":"not_found"}"#))
            return "unknown_model"
        }
        switch decision.fault {
        case .modelGone:
            send(context, head, status: .notFound, body: FakeRender.openRouterError(
                code: 404, message: "No endpoints found for \(model).", metadata: #"{"error_type":"not_found"}"#))
            return "model_gone"
        case .groqTPM:
            send(context, head, status: .payloadTooLarge, body: FakeRender.error(
                message: "Request too large for model `\(model)` in organization `org_fake` on tokens per minute (TPM): Limit 6000, Requested \(request.promptTokens), please reduce your message size and try again.",
                type: "tokens", code: "rate_limit_exceeded"))
            return "groq_tpm"
        default:
            break
        }
        if request.promptTokens + (request.maxTokens ?? 0) > contextLength {
            send(context, head, status: .badRequest, body: FakeRender.error(
                message: "This model's maximum context length is \(contextLength) tokens. However, you requested \(request.promptTokens + (request.maxTokens ?? 0)) tokens. Please reduce the length of the messages or completion.",
                type: "invalid_request_error", code: "context_length_exceeded"))
            return "context_length_exceeded"
        }
        switch decision.fault {
        case .error500:
            send(context, head, status: .internalServerError, body: FakeRender.error(message: "The server had an error while processing your request.", type: "server_error", code: "internal_error"))
            return "error_500"
        case .error502:
            send(context, head, status: .badGateway, body: FakeRender.openRouterError(code: 502, message: "Provider returned error", metadata: #"{"error_type":"provider_unavailable"}"#))
            return "error_502"
        case .error503, .error503RetryAfter:
            if decision.fault == .error503RetryAfter { headers.append(("Retry-After", "\(b.retryAfterSeconds ?? 2)")) }
            send(context, head, status: .serviceUnavailable, headers: headers, body: FakeRender.openRouterError(code: 503, message: "Provider overloaded", metadata: #"{"error_type":"provider_overloaded"}"#))
            return decision.fault.rawValue
        case .moderation:
            send(context, head, status: .forbidden, body: FakeRender.openRouterError(
                code: 403, message: "Your input was flagged by moderation", metadata: #"{"error_type":"permission_denied","reasons":["harassment"],"flagged_input":"…","provider_name":"fake"}"#))
            return "moderation"
        case .contentPolicy:
            send(context, head, status: .badRequest, body: FakeRender.openRouterError(
                code: 400, message: "Request blocked by the provider's content policy", metadata: #"{"error_type":"content_policy_violation"}"#))
            return "content_policy"
        default:
            break
        }
        if request.prefill != nil, b.rejectPrefill == true {
            send(context, head, status: .badRequest, body: FakeRender.error(
                message: "This model does not support assistant message prefill.", type: "invalid_request_error", code: "prefill_unsupported"))
            return "prefill_rejected"
        }
        return nil
    }

    /// OpenRouter's 429 for a spent free-model limit: `X-RateLimit-*` both as headers and inside `error.metadata.headers`.
    func sendOpenRouterLimit(
        _ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ headers: [(String, String)], limit: Int, resetMs: Int64, message: String
    ) {
        let limits = [("X-RateLimit-Limit", "\(limit)"), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "\(resetMs)")]
        let metadata = "{\"headers\":{" + limits.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ",") + "},\"error_type\":\"rate_limit_exceeded\"}"
        send(context, head, status: .tooManyRequests, headers: headers + limits, body: FakeRender.openRouterError(code: 429, message: message, metadata: metadata))
    }

    static func nextUTCMidnightMs() -> Int64 {
        let day: Int64 = 86_400_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return (now / day + 1) * day
    }
}
