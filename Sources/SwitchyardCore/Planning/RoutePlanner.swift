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
            candidates.append(PlannedModel(model: modelID, keys: keys, usableContext: usable))
        }
        return RoutePlan(route: route.name, neededTokens: needed, candidates: candidates, skipped: skipped)
    }

    /// Usable keys in round-robin order, the affinity key first when it is usable.
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
