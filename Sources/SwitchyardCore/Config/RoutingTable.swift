/// Index of a key in `RoutingTable.keys`; valid only for the table that issued it.
public typealias KeyID = Int
/// Index of a model in `RoutingTable.models`.
public typealias ModelID = Int
/// Index of a provider in `RoutingTable.providers`.
public typealias ProviderID = Int
/// Index of an account in `RoutingTable.accounts`.
public typealias AccountID = Int

/// The validated, immutable routing configuration: one snapshot per load of routes.yaml.
///
/// Requests read one snapshot from start to end; a reload builds a new one and swaps it in,
/// so nothing on the request path waits for or observes a half-applied edit.
public struct RoutingTable: Sendable {
    public var source: String
    public var envFile: String?
    public var server: ServerSettings
    public var providers: [Provider]
    public var accounts: [Account]
    public var keys: [APIKey]
    public var models: [Model]
    public var routes: [Route]
    public var routing: RoutingSettings
    public var health: HealthSettings
    public var retry: RetrySettings
    public var cache: CacheSettings
    /// Problems that do not stop the table from serving (a missing key variable, a loose env file).
    public var warnings: [ConfigProblem]
    /// Declared keys whose variable is not set; they keep their label for when it is.
    public var unsetKeys: [UnsetKey] = []
    /// The SQLite file that keeps health and usage across restarts; nil keeps them in memory only.
    public var statePath: String?
    /// `shared:`: PostgreSQL keeps the state every replica shares; nil (or no URL) keeps it in `statePath`.
    public var shared: SharedSettings?
    public static let defaultStateFile = "switchyard-state.sqlite"

    let routeIndex: [String: Int]
    let modelIndex: [String: ModelID]

    init(
        source: String, envFile: String?, server: ServerSettings, providers: [Provider], accounts: [Account],
        keys: [APIKey], models: [Model], routes: [Route], routing: RoutingSettings, health: HealthSettings,
        retry: RetrySettings, cache: CacheSettings, warnings: [ConfigProblem]
    ) {
        self.source = source
        self.envFile = envFile
        self.server = server
        self.providers = providers
        self.accounts = accounts
        self.keys = keys
        self.models = models
        self.routes = routes
        self.routing = routing
        self.health = health
        self.retry = retry
        self.cache = cache
        self.warnings = warnings
        var routeIndex: [String: Int] = [:]
        for (i, r) in routes.enumerated() { routeIndex[r.name] = i }
        self.routeIndex = routeIndex
        var modelIndex: [String: ModelID] = [:]
        for m in models { modelIndex[m.name] = m.id }
        self.modelIndex = modelIndex
    }

    public func route(named name: String) -> Route? {
        routeIndex[name].map { routes[$0] }
    }

    public func model(named name: String) -> Model? {
        modelIndex[name].map { models[$0] }
    }

    /// What an app's `model` field names: a route, or a single model served as a one-model route.
    public func target(named name: String) -> Route? {
        if let route = route(named: name) { return route }
        guard let model = model(named: name) else { return nil }
        return Route(name: model.name, kind: model.kind, prefer: .listed, models: [model.id], rankedModels: [model.id], defaults: [:])
    }

    public func key(labelled label: String) -> APIKey? {
        keys.first { $0.label == label }
    }
}

/// A key declared in routes.yaml whose variable is not set.
public struct UnsetKey: Sendable, Equatable {
    public var provider: ProviderID
    public var label: String
    public var env: String
}

public struct ServerSettings: Sendable, Equatable {
    public var listen: String = "127.0.0.1:8080"
    public var clientTokensEnv: String? = "SWITCHYARD_CLIENT_TOKENS"
    public var adminTokenEnv: String? = "SWITCHYARD_ADMIN_TOKEN"
    public var maxBodyBytes: Int = 4 * 1024 * 1024
    /// Requests in flight beyond this are answered 429 at once instead of queueing without bound.
    public var maxInFlight: Int = 1024
    /// A connection silent this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// A request (headers and body) must arrive whole this long after the connection opened or the previous
    /// answer ended; a client trickling bytes is cut off.
    public var requestReadTimeout: Duration = .seconds(30)
    /// Each client token (or address, with no tokens) may send this many requests a minute; nil: no limit.
    public var clientRequestsPerMinute: Int?
    public init() {}
}

/// How a provider speaks: decides which error shapes and headers to expect.
public enum ProviderKind: String, Sendable, CaseIterable {
    case openrouter, groq, openai, anthropic, gemini, generic

    /// Guesses the kind from the base URL's host when routes.yaml does not say.
    static func infer(fromBaseURL url: String) -> ProviderKind {
        let lower = url.lowercased()
        if lower.contains("openrouter.ai") { return .openrouter }
        if lower.contains("groq.com") { return .groq }
        if lower.contains("api.openai.com") { return .openai }
        if lower.contains("anthropic.com") { return .anthropic }
        if lower.contains("googleapis.com") { return .gemini }
        return .generic
    }

    /// The prefix its keys are known to start with, for a format warning at start.
    public var keyPrefix: String? {
        switch self {
        case .openrouter: "sk-or-"
        case .groq: "gsk_"
        case .openai: "sk-"
        case .anthropic: "sk-ant-"
        case .gemini: "AIza"
        case .generic: nil
        }
    }
}

public struct Provider: Sendable {
    public var id: ProviderID
    public var name: String
    public var kind: ProviderKind
    public var baseURL: String
    /// Extra headers sent upstream (`HTTP-Referer`, `X-Title`, …).
    public var headers: [(name: String, value: String)]
    public var keys: [KeyID]
    public var accounts: [AccountID]
    public var syncCatalog: Bool
    /// Verify every key against the provider once at start, before it takes traffic.
    public var checkKeys: Bool
    public var http2: Bool
}

/// Keys that draw on one quota. Free tiers count per account, not per key.
public struct Account: Sendable {
    public var id: AccountID
    public var provider: ProviderID
    public var name: String
    public var keys: [KeyID]
    public var requestsPerMinute: Int?
    public var requestsPerDay: Int?
}

/// An API key. Its value never leaves this struct except in the upstream `Authorization` header.
public struct APIKey: Sendable, CustomStringConvertible {
    public var id: KeyID
    public var provider: ProviderID
    public var account: AccountID
    /// `openrouter#2`: stable across reloads while the key keeps its place in routes.yaml.
    public var label: String
    public var env: String
    public var secret: Secret
    /// A stand-in for an unset variable, so `explain` can show routing before keys exist.
    public var isPlaceholder = false
    /// The key's own quota, on top of its account's (`{ env: K, requests_per_minute: 10 }`).
    public var requestsPerMinute: Int?
    public var requestsPerDay: Int?

    public var masked: String { secret.masked }
    public var description: String { "\(label) (\(masked))" }
}

/// A secret string whose printed forms are always masked.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    /// `Bearer VALUE`, an `Authorization` header's value: made once, not on every request sent with it.
    public let bearer: String

    public init(_ value: String) {
        self.value = value
        bearer = "Bearer " + value
    }

    /// `sk-or-…a1b2`: enough to tell keys apart, never enough to use one.
    public var masked: String {
        let chars = Array(value)
        if chars.count >= 20 { return String(chars[0..<6]) + "…" + String(chars[(chars.count - 4)...]) }
        if chars.count >= 8 { return "…" + String(chars[(chars.count - 2)...]) }
        return "…"
    }

    public var description: String { masked }
    public var debugDescription: String { masked }
}

/// What a model answers: chat completions, or embeddings (`POST /v1/embeddings`).
public enum ModelKind: String, Sendable, Equatable, CaseIterable {
    case chat
    case embedding
}

public struct Model: Sendable {
    public var id: ModelID
    public var name: String
    public var kind: ModelKind = .chat
    public var provider: ProviderID
    /// The id the provider knows the model by.
    public var upstream: String
    public var context: Int
    public var speed: Int
    public var quality: Int
    /// Accepts an assistant prefill, so a cut stream can be continued on it.
    public var prefill: Bool
    /// Largest request (prompt + output) the provider accepts at once, e.g. Groq's tokens-per-minute cap.
    public var maxRequestTokens: Int?
    /// Why the model is listed even though it may be gone (a retired free variant, say).
    public var note: String?
    /// Set when the provider's catalog no longer lists the model (`sync_catalog`): the planner skips it.
    public var retired: String?
}

public enum Preference: String, Sendable, CaseIterable {
    case speed, quality, balanced, listed
}

public struct Route: Sendable {
    public var name: String
    /// Every model of a route is of one kind (routes.yaml is refused otherwise).
    public var kind: ModelKind = .chat
    public var prefer: Preference
    /// The models as listed in routes.yaml.
    public var models: [ModelID]
    /// The models in preference order, computed once per table.
    public var rankedModels: [ModelID]
    /// Request fields applied when the client leaves them out, as JSON text (`0.3`, `"json"`).
    public var defaults: [String: String]
    public var cacheEnabled: Bool = true
    /// A fixed answer returned when every candidate failed, for apps that prefer it to an error.
    public var lastResort: String?
}

public struct RoutingSettings: Sendable, Equatable {
    /// How a model's usable keys are ordered.
    public enum KeySelection: String, Sendable, Equatable, CaseIterable {
        /// The account with the most quota left first, then the best recent success rate, round robin among equals.
        case headroom
        /// Plain rotation.
        case roundRobin = "round_robin"
    }

    public var defaultOutputTokens: Int = 512
    public var contextMargin: Double = 0.05
    public var keySelection: KeySelection = .headroom
    public init() {}
}

public struct HealthSettings: Sendable, Equatable {
    public var errorRateToDisable: Double = 0.5
    public var minRequests: Int = 10
    public var window: Duration = .seconds(60)
    public var disableFor: Duration = .seconds(300)
    /// Cap for the doubled disable period after failed probes.
    public var maxDisableFor: Duration = .seconds(3600)
    public var consecutiveFailuresToCool: Int = 3
    public var cooldown: Duration = .seconds(60)
    /// Cap for the doubled cooling period after failed trials.
    public var maxCooldown: Duration = .seconds(300)
    public var rateLimitCooldown: Duration = .seconds(60)
    /// First re-probe of a key set aside as invalid; doubles after each failed probe.
    public var reprobeAfter: Duration = .seconds(600)
    public var maxReprobeAfter: Duration = .seconds(6 * 3600)
    /// How long an exhausted key (402, insufficient quota) stays out when no reset is known.
    public var exhaustedCooldown: Duration = .seconds(3600)
    /// A model outage's first window (failing on several keys at once, or several times in a row on a
    /// provider's only key); then one trial request decides.
    public var modelOutage: Duration = .seconds(10)
    /// Cap for the doubled outage window after failed trials.
    public var modelOutageMax: Duration = .seconds(300)
    /// Failures in a row that make an outage of a model whose provider has one key.
    public var modelFailuresForOutage: Int = 3
    /// Keys failing authentication together within this span are an upstream incident.
    public var incidentWindow: Duration = .seconds(60)
    public init() {}
}

public struct RetrySettings: Sendable, Equatable {
    public var maxAttempts: Int = 4
    public var backoff: [Duration] = [.zero, .seconds(2), .seconds(4)]
    public var backoffCap: Duration = .seconds(8)
    public var connectTimeout: Duration = .seconds(5)
    public var firstTokenTimeout: Duration = .seconds(15)
    public var streamIdleTimeout: Duration = .seconds(10)
    public var attemptTimeout: Duration = .seconds(30)
    public var requestDeadline: Duration = .seconds(60)
    /// Same-key retries of a transient fault when the model has no other key.
    public var sameModelRetries: Int = 1
    /// A request whose every candidate is rate-limited waits this long at most, once, for the earliest recovery.
    public var maxWait: Duration = .seconds(5)
    public init() {}
}

public struct CacheSettings: Sendable, Equatable {
    public enum Scope: String, Sendable { case perClient = "per_client", shared }
    public var enabled: Bool = true
    public var scope: Scope = .perClient
    public var ttl: Duration = .seconds(300)
    public var maxEntries: Int = 10_000
    public var maxBytes: Int = 64 * 1024 * 1024
    public init() {}
}
