/// What an upstream attempt's result means for routing: who is to blame and whether another try can help.
public enum OutcomeClass: String, Sendable, Equatable, CaseIterable {
    case success
    /// 401, 403 permission, `API_KEY_INVALID`: the key is dead (or, many at once, the provider is).
    case keyInvalid = "key_invalid"
    /// 402, `insufficient_quota`: the key has no money or quota left.
    case keyExhausted = "key_exhausted"
    /// 429 per-minute: this key waits; others may serve.
    case keyRateLimited = "key_rate_limited"
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
        case .keyInvalid, .keyExhausted, .keyRateLimited, .accountExhausted: true
        default: false
        }
    }

    /// Whether the client must hear about it as is, without another attempt.
    public var isFinalForClient: Bool {
        self == .requestInvalid || self == .contentRefused
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

    public init(_ kind: OutcomeClass, retry: RetryHint? = nil, message: String? = nil, status: Int? = nil) {
        self.kind = kind
        self.retry = retry
        self.message = message
        self.status = status
    }

    public static let success = Outcome(.success, status: 200)
}
