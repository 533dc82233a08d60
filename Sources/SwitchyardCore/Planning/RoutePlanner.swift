import Synchronization

/// What the planner needs to know about one request.
public struct PlanRequest: Sendable, Equatable {
    public var estimatedPromptTokens: Int
    /// The client's `max_tokens`; nil reserves `default_output_tokens`.
    public var maxTokens: Int?
    /// `x-switchyard-affinity`: the same value prefers the same key while it is usable.
    public var affinity: String?

    public init(estimatedPromptTokens: Int, maxTokens: Int? = nil, affinity: String? = nil) {
        self.estimatedPromptTokens = estimatedPromptTokens
        self.maxTokens = maxTokens
        self.affinity = affinity
    }
}

/// A model to try, with its keys in the order to try them.
public struct PlannedModel: Sendable, Equatable {
    public var model: ModelID
    public var keys: [KeyID]
    /// The context the request may use on this model after the safety margin.
    public var usableContext: Int
}

public enum SkipReason: Sendable, Equatable {
    case retired
    case contextTooSmall(usable: Int)
    case requestTooLarge(limit: Int)
    case modelUnavailable
    case noKeys
    case noUsableKey
    /// Keys are usable, but a rate limit on this model holds it back on every one of them.
    case rateLimitedOnEveryKey
}

extension SkipReason {
    /// Whether a model skipped for this reason comes back by itself (its health), not never (context, no keys).
    public var mayRecover: Bool {
        switch self {
        case .modelUnavailable, .noUsableKey, .rateLimitedOnEveryKey: true
        case .retired, .contextTooSmall, .requestTooLarge, .noKeys: false
        }
    }
}

public struct SkippedModel: Sendable, Equatable {
    public var model: ModelID
    public var reason: SkipReason
}

/// The ordered candidates for one request, and why every other model of the route was left out.
public struct RoutePlan: Sendable, Equatable {
    public var route: String
    /// Prompt estimate plus reserved output: what must fit a model's context.
    public var neededTokens: Int
    public var candidates: [PlannedModel]
    public var skipped: [SkippedModel]

    /// The candidates and the models skipped only for health: those that may serve this request once holds lift.
    public var modelsThatMayServe: [ModelID] {
        candidates.map(\.model) + skipped.compactMap { $0.reason.mayRecover ? $0.model : nil }
    }

    /// The (model, key) pairs in the order the dispatcher tries them.
    public var pairs: [(model: ModelID, key: KeyID)] {
        candidates.flatMap { c in c.keys.map { (c.model, $0) } }
    }

    public static func == (lhs: RoutePlan, rhs: RoutePlan) -> Bool {
        lhs.route == rhs.route && lhs.neededTokens == rhs.neededTokens && lhs.candidates == rhs.candidates
            && lhs.skipped == rhs.skipped
    }
}

/// Per-provider round-robin counters, shared by every request.
public final class KeyRotation: Sendable {
    private final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    private let counters: [Counter]

    public init(providers: Int) {
        counters = (0..<max(providers, 1)).map { _ in Counter() }
    }

    /// The next turn for `provider`; each call advances it by one.
    public func next(_ provider: ProviderID) -> UInt64 {
        counters[provider].value.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// The turn the next request will get, without taking it (for explaining a plan).
    public func peek(_ provider: ProviderID) -> UInt64 {
        counters[provider].value.load(ordering: .relaxed)
    }
}

/// Ranks a route's models for one request and orders each model's keys. Pure: the table, the request,
/// a health view and the rotation decide everything; nothing is sent.
public struct RoutePlanner: Sendable {
    public let table: RoutingTable

    public init(table: RoutingTable) {
        self.table = table
    }

    /// Tokens that must fit a model's context for this request.
    public func neededTokens(_ request: PlanRequest) -> Int {
        request.estimatedPromptTokens + max(request.maxTokens ?? table.routing.defaultOutputTokens, 0)
    }

    /// Context a model offers after the safety margin.
    public func usableContext(_ model: Model) -> Int {
        Int((Double(model.context) * (1 - table.routing.contextMargin)).rounded(.down))
    }

    /// - Parameter advance: take a round-robin turn (a real request) or only look at the next one (an explanation).
    public func plan(
        route: Route, request: PlanRequest, health: some HealthView, rotation: KeyRotation, at now: Timestamp, advance: Bool = true
    ) -> RoutePlan {
        let needed = neededTokens(request)
        var candidates: [PlannedModel] = []
        candidates.reserveCapacity(route.rankedModels.count)
        var skipped: [SkippedModel] = []
        // Usable keys per provider, computed once per plan; models of one provider share a turn.
        var providerKeys: [(provider: ProviderID, keys: [KeyID])] = []

        for modelID in route.rankedModels {
            let model = table.models[modelID]
            if model.retired != nil {
                skipped.append(SkippedModel(model: modelID, reason: .retired))
                continue
            }
            let usable = usableContext(model)
            if needed > usable {
                skipped.append(SkippedModel(model: modelID, reason: .contextTooSmall(usable: usable)))
                continue
            }
            if let limit = model.maxRequestTokens, needed > limit {
                skipped.append(SkippedModel(model: modelID, reason: .requestTooLarge(limit: limit)))
                continue
            }
            if !health.isModelUsable(modelID, at: now) {
                skipped.append(SkippedModel(model: modelID, reason: .modelUnavailable))
                continue
            }
            let provider = table.providers[model.provider]
            if provider.keys.isEmpty {
                skipped.append(SkippedModel(model: modelID, reason: .noKeys))
                continue
            }
            let keys: [KeyID]
            if let known = providerKeys.first(where: { $0.provider == model.provider }) {
                keys = known.keys
            } else {
                keys = orderKeys(provider, affinity: request.affinity, health: health, rotation: rotation, at: now, advance: advance)
                providerKeys.append((model.provider, keys))
            }
            if keys.isEmpty {
                skipped.append(SkippedModel(model: modelID, reason: .noUsableKey))
                continue
            }
            // A limit on this model (on a key, or on the account) skips the pair, never the key's other models.
            let pairKeys = keys.allSatisfy { health.isPairUsable(key: $0, model: modelID, at: now) }
                ? keys : keys.filter { health.isPairUsable(key: $0, model: modelID, at: now) }
            if pairKeys.isEmpty {
                skipped.append(SkippedModel(model: modelID, reason: .rateLimitedOnEveryKey))
                continue
            }
            candidates.append(PlannedModel(model: modelID, keys: pairKeys, usableContext: usable))
        }
        return RoutePlan(route: route.name, neededTokens: needed, candidates: candidates, skipped: skipped)
    }

    /// Usable keys in the table's `key_selection` order, the affinity key first when it is usable.
    ///
    /// `headroom`: the key whose account has the most requests left first (configured or learned limits; no known
    /// limit counts as most), then the best recent success rate in bands of 10% (90% and up alike), round robin
    /// among equals.
    func orderKeys(
        _ provider: Provider, affinity: String?, health: some HealthView, rotation: KeyRotation, at now: Timestamp, advance: Bool = true
    ) -> [KeyID] {
        var usable: [KeyID] = []
        usable.reserveCapacity(provider.keys.count)
        for key in provider.keys where health.isKeyUsable(key, at: now) { usable.append(key) }
        guard usable.count > 1 else { return usable }
        let turn = Int((advance ? rotation.next(provider.id) : rotation.peek(provider.id)) % UInt64(usable.count))
        var ordered = Array(usable[turn...])
        ordered.append(contentsOf: usable[..<turn])
        if table.routing.keySelection == .headroom {
            func rank(_ key: KeyID) -> KeyRank { KeyRank(headroom: health.keyHeadroom(key, at: now), successRate: health.keySuccessRate(key, at: now)) }
            // Most plans find every key alike: compare before building anything.
            let first = rank(ordered[0])
            if ordered.dropFirst().contains(where: { rank($0) != first }) {
                let ranks = ordered.map(rank)
                // Stable: equal ranks keep their round-robin order.
                ordered = ordered.indices.sorted { a, b in ranks[a] != ranks[b] ? ranks[a] > ranks[b] : a < b }.map { ordered[$0] }
            }
        }
        if let affinity {
            let preferred = provider.keys[Int(FNV1a.hash(affinity) % UInt64(provider.keys.count))]
            if let index = ordered.firstIndex(of: preferred), index != 0 {
                ordered.remove(at: index)
                ordered.insert(preferred, at: 0)
            }
        }
        return ordered
    }
}

/// How `headroom` key selection ranks a key: requests left first, then recent success.
///
/// Success counts in bands of 10%, with everything from 90% up in one band: a key that lost a request or two
/// keeps its turn (so a failing key still meets the error-rate rule and its trials), and only a key that fails
/// often yields its turn to better ones.
public struct KeyRank: Sendable, Comparable {
    /// Requests left before a known limit; `Int.max` when none is known.
    public var headroom: Int
    /// 9 for 90% success and up, then 8 for 80-89% and so on; 9 for a key without enough recent outcomes.
    public var successBand: Int
    /// The measured success rate in percent, for explanations; nil when there were too few outcomes.
    public var successPercent: Int?

    public init(headroom: Int?, successRate: Double?) {
        self.headroom = headroom ?? .max
        successBand = min(Int(((successRate ?? 1) * 10).rounded(.down)), 9)
        successPercent = successRate.map { Int(($0 * 100).rounded(.down)) }
    }

    public static func == (a: KeyRank, b: KeyRank) -> Bool {
        a.headroom == b.headroom && a.successBand == b.successBand
    }

    public static func < (a: KeyRank, b: KeyRank) -> Bool {
        (a.headroom, a.successBand) < (b.headroom, b.successBand)
    }

    /// `18 requests left, 95% ok`, for explanations.
    public var text: String {
        let left = headroom == .max ? "no known limit" : "\(headroom) requests left"
        return "\(left), " + (successPercent.map { "\($0)% ok" } ?? "too few recent requests to rate")
    }
}

/// A stable 64-bit hash (Swift's `Hasher` is seeded per process, so affinity would not survive a restart).
public enum FNV1a {
    public static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }
}
