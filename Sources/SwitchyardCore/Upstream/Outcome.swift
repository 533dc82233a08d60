/// What an upstream attempt's result means for routing: who is to blame and whether another try can help.
public enum OutcomeClass: String, Sendable, Equatable, CaseIterable {
    case success
    /// 401, 403 permission, `API_KEY_INVALID`: the key is dead (or, many at once, the provider is).
    case keyInvalid = "key_invalid"
    /// 402, `insufficient_quota`: the key has no money or quota left.
    case keyExhausted = "key_exhausted"
    /// 429 per-minute: who waits is the outcome's `scope` (a model on a key, a model on an account, an account,
    /// a model everywhere, or a whole key).
    case rateLimited = "rate_limited"
    /// 429 per-day (`free-models-per-day`, `PerDay`): every key of the account is out until the reset.
    case accountExhausted = "account_exhausted"
    /// 400/422 invalid request, 413 payload too large: the client's to fix; nobody is blamed.
    case requestInvalid = "request_invalid"
    /// The prompt does not fit the model: a larger-context model may serve.
    case contextTooLong = "context_too_long"
    /// Groq's 413 `rate_limit_exceeded`: the request alone exceeds the model's token-per-minute limit.
    case requestTooLargeForModel = "request_too_large_for_model"
    /// 400 content policy, 403 moderation: the refusal goes back to the client.
    case contentRefused = "content_refused"
    /// 404 model not found, no endpoints, free variant ended: the model is gone, not the key.
    case modelGone = "model_gone"
    /// 408, 5xx, 529, network errors, timeouts before the first byte, error events mid-stream.
    case transient
    /// No first token within `first_token_timeout`: left for the next candidate, never retried on the same pair.
    case silent
    /// The client went away or the request deadline passed: blames nobody.
    case cancelled

    /// Whether the failure is the key's own: the next key of the same model may serve at once.
    public var isKeyFault: Bool {
        switch self {
        case .keyInvalid, .keyExhausted, .rateLimited, .accountExhausted: true
        default: false
        }
    }

    /// Whether the client must hear about it as is, without another attempt.
    public var isFinalForClient: Bool {
        self == .requestInvalid || self == .contentRefused
    }
}

/// Who a rate limit holds back: blaming wider than the provider meant takes healthy capacity away
/// (one model's 429 must not stop the key's other models), blaming narrower hammers the limited scope.
public enum RateLimitScope: String, Sendable, Equatable, CaseIterable {
    /// One model on one key: the narrow start for providers whose limits are not known.
    case keyModel = "key_model"
    /// One model on every key of the account (Groq, OpenAI: per model per organisation).
    case accountModel = "account_model"
    /// Every (free) model on every key of the account (OpenRouter's `free-models-per-min`).
    case account
    /// One model on every key (OpenRouter: the provider behind the model is busy).
    case model
    /// The whole key, whatever the model.
    case key

    /// How the scope reads in stats and logs.
    public var text: String {
        switch self {
        case .keyModel: "per key and model"
        case .accountModel: "per model on the account"
        case .account: "per account"
        case .model: "per model, every key"
        case .key: "per key"
        }
    }
}

/// When an upstream said to come back.
public enum RetryHint: Sendable, Equatable {
    case after(Duration)
    case at(Timestamp)

    public func instant(from now: Timestamp) -> Timestamp {
        switch self {
        case .after(let d): now + d
        case .at(let t): t
        }
    }
}

/// One classified attempt result.
public struct Outcome: Sendable, Equatable {
    public var kind: OutcomeClass
    public var retry: RetryHint?
    /// The upstream's own words (with any key material redacted), for the client's error and the logs.
    public var message: String?
    /// The upstream's status code, or nil for network faults and timeouts.
    public var status: Int?
    /// Who a `rateLimited` outcome holds back; nil for every other class.
    public var scope: RateLimitScope?

    public init(_ kind: OutcomeClass, retry: RetryHint? = nil, message: String? = nil, status: Int? = nil, scope: RateLimitScope? = nil) {
        self.kind = kind
        self.retry = retry
        self.message = message
        self.status = status
        self.scope = scope ?? (kind == .rateLimited ? .keyModel : nil)
    }

    public static let success = Outcome(.success, status: 200)
}
