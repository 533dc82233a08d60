import Foundation
import Yams

/// A fault the fake upstream can inject, shaped like the real providers' (see providers.md).
public enum FakeFault: String, Sendable, CaseIterable, Codable {
    case none
    case error500 = "error_500"
    case error502 = "error_502"
    case error503 = "error_503"
    /// 503 with `Retry-After`.
    case error503RetryAfter = "error_503_retry_after"
    /// 429 with `Retry-After`.
    case rateLimit = "rate_limit"
    case rateLimitNoRetryAfter = "rate_limit_no_retry_after"
    /// Groq's and OpenAI's per-model, per-organisation 429 ("Rate limit reached for model `M` in organization …
    /// on requests per minute (RPM)"), with `retry-after`.
    case rateLimitModel = "rate_limit_model"
    /// OpenRouter's account-wide `free-models-per-min` 429: no `Retry-After`, `X-RateLimit-*` as headers and in
    /// `error.metadata.headers`.
    case freeModelsPerMin = "free_models_per_min"
    /// OpenRouter's "`M` is temporarily rate-limited upstream": the provider behind one model is busy for
    /// everyone; 429 with `Retry-After`.
    case upstreamRateLimited = "upstream_rate_limited"
    /// OpenRouter's daily cap: `free-models-per-day` with `X-RateLimit-*`.
    case dailyCap = "daily_cap"
    case invalidKey = "invalid_key"
    case paymentRequired = "payment_required"
    case moderation
    case modelGone = "model_gone"
    case contentPolicy = "content_policy"
    /// Groq's 413: the request alone exceeds the tokens-per-minute limit.
    case groqTPM = "groq_tpm"
    /// TCP reset before any response byte.
    case reset
    /// Accept the request and never answer.
    case hang
    /// Headers at once, the first token after `delay`.
    case slowFirstToken = "slow_first_token"
    /// Stream cut after `after_tokens` tokens: the connection closes with no terminating chunk.
    case cut
    /// Stream stalls (open and silent) after `after_tokens` tokens.
    case stall
    /// A malformed event at token `after_tokens`; the stream then goes on.
    case malformed
    /// A complete stream without `data: [DONE]`.
    case noDone = "no_done"
    /// OpenRouter's in-stream error event (`finish_reason: "error"`) at token `after_tokens`.
    case streamError = "stream_error"
    /// A 200 whose body carries `choices[].error` (non-streaming).
    case choiceError = "choice_error"
}

/// How the fake answers one kind of request. Unset fields fall through to the next, less specific behaviour
/// (key, then model, then default).
public struct FakeBehavior: Sendable, Equatable {
    public var fault: FakeFault?
    /// Chance the fault applies to a request, 0…1 (default 1).
    public var probability: Double?
    /// The fault applies to the first `times` matching requests only (then the behaviour is healthy).
    public var times: Int?
    /// The fault applies only during this long after start or reset (flapping), then heals.
    public var downFor: Duration?
    public var retryAfterSeconds: Int?
    public var afterTokens: Int?
    public var delay: Duration?
    /// Fixed latency before answering, or a random one in `latency...latencyMax`.
    public var latency: Duration?
    public var latencyMax: Duration?
    public var tokenInterval: Duration?
    public var answerTokens: Int?
    public var keepAlive: Bool?
    public var rejectPrefill: Bool?
    /// Simulated requests-per-minute quota; success answers carry `x-ratelimit-*`, excess gets 429.
    public var requestsPerMinute: Int?

    public init(
        fault: FakeFault? = nil, probability: Double? = nil, times: Int? = nil, downFor: Duration? = nil,
        retryAfterSeconds: Int? = nil, afterTokens: Int? = nil, delay: Duration? = nil, latency: Duration? = nil,
        latencyMax: Duration? = nil, tokenInterval: Duration? = nil, answerTokens: Int? = nil, keepAlive: Bool? = nil,
        rejectPrefill: Bool? = nil, requestsPerMinute: Int? = nil
    ) {
        self.fault = fault
        self.probability = probability
        self.times = times
        self.downFor = downFor
        self.retryAfterSeconds = retryAfterSeconds
        self.afterTokens = afterTokens
        self.delay = delay
        self.latency = latency
        self.latencyMax = latencyMax
        self.tokenInterval = tokenInterval
        self.answerTokens = answerTokens
        self.keepAlive = keepAlive
        self.rejectPrefill = rejectPrefill
        self.requestsPerMinute = requestsPerMinute
    }

    public static let healthy = FakeBehavior()
}

/// Everything the fake upstream does: its model catalog and its behaviour per key, per model and by default.
public struct FakeScript: Sendable, Equatable {
    /// Model id → context length, served by `GET /v1/models` and used for `context_length_exceeded`.
    public var models: [String: Int]
    public var defaultBehavior: FakeBehavior
    public var keyBehavior: [String: FakeBehavior]
    public var modelBehavior: [String: FakeBehavior]
    /// Account name → keys sharing a quota (for `requests_per_minute` with account scope and daily caps).
    public var accounts: [String: [String]]
    /// Key → a readable name for the request log (`openrouter#1`); others are logged masked.
    public var keyLabels: [String: String]

    public init(
        models: [String: Int] = FakeScript.defaultModels, defaultBehavior: FakeBehavior = .healthy,
        keyBehavior: [String: FakeBehavior] = [:], modelBehavior: [String: FakeBehavior] = [:],
        accounts: [String: [String]] = [:], keyLabels: [String: String] = [:]
    ) {
        self.models = models
        self.defaultBehavior = defaultBehavior
        self.keyBehavior = keyBehavior
        self.modelBehavior = modelBehavior
        self.accounts = accounts
        self.keyLabels = keyLabels
    }

    /// The seed list's models with the context lengths their providers declare.
    public static let defaultModels: [String: Int] = [
        "meta-llama/llama-3.2-3b-instruct:free": 131_072,
        "microsoft/phi-3-mini-128k-instruct:free": 128_000,
        "meta-llama/llama-3.1-8b-instruct:free": 8192,
        "openchat/openchat-7b:free": 8192,
        "google/gemma-2-9b-it:free": 8192,
        "llama-3.1-8b-instant": 131_072,
        "llama-3.3-70b-versatile": 131_072,
        "text-embedding-004": 2048,
    ]
}

/// A script file or control-API body that could not be read.
public struct FakeScriptError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension FakeScript {
    /// Parses a YAML or JSON script:
    ///
    /// ```yaml
    /// models: { "vendor/model:free": 8192 }        # optional; the seed models otherwise
    /// default: { latency: 2ms..5ms, answer_tokens: 24 }
    /// keys:
    ///   sk-fake-1: { fault: error_500 }             # persistent
    ///   sk-fake-2: { fault: rate_limit, retry_after: 2, times: 1 }
    /// models_behavior:
    ///   google/gemma-2-9b-it:free: { fault: model_gone }
    /// accounts: { main: [sk-fake-1, sk-fake-2] }
    /// key_labels: { sk-fake-1: "openrouter#1" }
    /// ```
    public static func parse(_ text: String) throws -> FakeScript {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw FakeScriptError(description: "script: \(error)")
        }
        guard let dict = root as? [String: Any] else {
            if root == nil { return FakeScript() }
            throw FakeScriptError(description: "script: expected a mapping at the top")
        }
        return try FakeScript(parsing: dict, base: FakeScript())
    }

    /// Applies a control-API update: sections present replace the current ones.
    public func updated(with text: String) throws -> FakeScript {
        guard let dict = try Yams.load(yaml: text) as? [String: Any] else {
            throw FakeScriptError(description: "behavior: expected a mapping")
        }
        return try FakeScript(parsing: dict, base: self)
    }

    init(parsing dict: [String: Any], base: FakeScript) throws {
        self = base
        let known: Set = ["models", "default", "keys", "models_behavior", "accounts", "key_labels"]
        for key in dict.keys where !known.contains(key) {
            throw FakeScriptError(description: "script: unknown section '\(key)'; known: \(known.sorted().joined(separator: ", "))")
        }
        if let models = dict["models"] {
            guard let map = models as? [String: Any] else { throw FakeScriptError(description: "models: expected id: context") }
            self.models = try map.mapValues { value in
                guard let n = Self.int(value) else { throw FakeScriptError(description: "models: context must be a number") }
                return n
            }
        }
        if let d = dict["default"] { defaultBehavior = try Self.behavior(d, path: "default") }
        if let k = dict["keys"] { keyBehavior = try Self.behaviors(k, path: "keys") }
        if let m = dict["models_behavior"] { modelBehavior = try Self.behaviors(m, path: "models_behavior") }
        if let a = dict["accounts"] {
            guard let map = a as? [String: Any] else { throw FakeScriptError(description: "accounts: expected name: [keys]") }
            accounts = map.mapValues { ($0 as? [Any])?.map { "\($0)" } ?? [] }
        }
        if let l = dict["key_labels"] {
            guard let map = l as? [String: Any] else { throw FakeScriptError(description: "key_labels: expected key: label") }
            keyLabels = map.mapValues { "\($0)" }
        }
    }

    static func behaviors(_ value: Any, path: String) throws -> [String: FakeBehavior] {
        guard let map = value as? [String: Any] else { throw FakeScriptError(description: "\(path): expected name: behaviour") }
        var out: [String: FakeBehavior] = [:]
        for (name, b) in map { out[name] = try behavior(b, path: "\(path).\(name)") }
        return out
    }

    static func behavior(_ value: Any, path: String) throws -> FakeBehavior {
        if let fault = value as? String {
            guard let f = FakeFault(rawValue: fault) else { throw unknownFault(fault, path) }
            return FakeBehavior(fault: f)
        }
        guard let map = value as? [String: Any] else { throw FakeScriptError(description: "\(path): expected a mapping") }
        var b = FakeBehavior()
        for (key, v) in map {
            let p = "\(path).\(key)"
            switch key {
            case "fault":
                guard let f = FakeFault(rawValue: "\(v)") else { throw unknownFault("\(v)", p) }
                b.fault = f
            case "probability": b.probability = try double(v, p)
            case "times": b.times = try integer(v, p)
            case "down_for": b.downFor = try duration(v, p)
            case "retry_after": b.retryAfterSeconds = try integer(v, p)
            case "after_tokens": b.afterTokens = try integer(v, p)
            case "delay": b.delay = try duration(v, p)
            case "latency":
                let text = "\(v)"
                if let range = text.range(of: "..") {
                    b.latency = try duration(String(text[..<range.lowerBound]), p)
                    b.latencyMax = try duration(String(text[range.upperBound...]), p)
                } else {
                    b.latency = try duration(v, p)
                }
            case "token_interval": b.tokenInterval = try duration(v, p)
            case "answer_tokens": b.answerTokens = try integer(v, p)
            case "keep_alive": b.keepAlive = try bool(v, p)
            case "reject_prefill": b.rejectPrefill = try bool(v, p)
            case "requests_per_minute": b.requestsPerMinute = try integer(v, p)
            default: throw FakeScriptError(description: "\(p): unknown field")
            }
        }
        return b
    }

    static func unknownFault(_ name: String, _ path: String) -> FakeScriptError {
        FakeScriptError(description: "\(path): unknown fault '\(name)'; known: \(FakeFault.allCases.map(\.rawValue).joined(separator: ", "))")
    }

    static func int(_ v: Any) -> Int? {
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded() { return Int(d) }
        return Int("\(v)")
    }

    static func integer(_ v: Any, _ p: String) throws -> Int {
        guard let i = int(v) else { throw FakeScriptError(description: "\(p): expected a whole number") }
        return i
    }

    static func double(_ v: Any, _ p: String) throws -> Double {
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        guard let d = Double("\(v)") else { throw FakeScriptError(description: "\(p): expected a number") }
        return d
    }

    static func bool(_ v: Any, _ p: String) throws -> Bool {
        if let b = v as? Bool { return b }
        throw FakeScriptError(description: "\(p): expected true or false")
    }

    /// `250ms`, `2s`, `1m`, or a number of seconds.
    static func duration(_ v: Any, _ p: String) throws -> Duration {
        if let i = v as? Int { return .seconds(i) }
        if let d = v as? Double { return .milliseconds(Int64(d * 1000)) }
        let text = "\(v)".trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        for (unit, scale) in units where text.hasSuffix(unit) {
            if let n = Double(text.dropLast(unit.count)) { return .nanoseconds(Int64(n * scale * 1e9)) }
        }
        if let n = Double(text) { return .nanoseconds(Int64(n * 1e9)) }
        throw FakeScriptError(description: "\(p): '\(text)' is not a duration (250ms, 2s, 1m)")
    }
}
