/// Words for a plan: why each candidate is where it is, and why each other model was left out.
/// Shared by `switchyard explain` and the admin API, so both say the same thing.
public struct PlanExplanation: Sendable {
    public struct Candidate: Sendable {
        public var rank: Int
        public var model: String
        public var upstream: String
        public var provider: String
        public var context: Int
        public var usableContext: Int
        public var speed: Int
        public var quality: Int
        public var keys: [String]
        /// Why the keys are in this order.
        public var keyOrder: String
        public var why: String
    }

    public struct Skip: Sendable {
        public var model: String
        public var reason: String
    }

    public var route: String
    public var prefer: Preference
    public var promptTokens: Int
    public var reservedOutput: Int
    public var neededTokens: Int
    public var candidates: [Candidate]
    public var skipped: [Skip]

    public init(plan: RoutePlan, route: Route, request: PlanRequest, table: RoutingTable, health: HealthBook, at now: Timestamp) {
        self.route = route.name
        prefer = route.prefer
        promptTokens = request.estimatedPromptTokens
        reservedOutput = plan.neededTokens - request.estimatedPromptTokens
        neededTokens = plan.neededTokens
        let rankWord: String
        switch route.prefer {
        case .speed: rankWord = "ranked by speed, then quality"
        case .quality: rankWord = "ranked by quality, then speed"
        case .balanced: rankWord = "ranked by speed + quality"
        case .listed: rankWord = "in the order listed"
        }
        candidates = plan.candidates.enumerated().map { index, c in
            let m = table.models[c.model]
            let keyNames = c.keys.map { k in
                let key = table.keys[k]
                return key.isPlaceholder ? "\(key.label) (not set)" : key.label
            }
            return Candidate(
                rank: index + 1, model: m.name, upstream: m.upstream, provider: table.providers[m.provider].name, context: m.context,
                usableContext: c.usableContext, speed: m.speed, quality: m.quality, keys: keyNames,
                keyOrder: Self.keyOrder(c.keys, table: table, health: health, at: now),
                why: "fits: \(plan.neededTokens) ≤ \(c.usableContext) usable tokens; \(rankWord)")
        }
        skipped = plan.skipped.map { s in
            let m = table.models[s.model]
            let reason: String
            switch s.reason {
            case .retired:
                reason = "retired: \(m.retired ?? "no longer listed by its provider")"
            case .contextTooSmall(let usable):
                let margin = Int((table.routing.contextMargin * 100).rounded())
                reason = "needs \(plan.neededTokens) tokens but its context \(m.context) leaves \(usable) usable (\(margin)% margin)"
            case .requestTooLarge(let limit):
                reason = "request of \(plan.neededTokens) tokens is over its max_request_tokens \(limit)"
            case .modelUnavailable:
                let (state, why) = health.modelState(s.model, at: now)
                reason = "model \(state.name)\(state.until.map { " until \($0)" } ?? ""): \(why)"
            case .noKeys:
                let provider = table.providers[m.provider]
                let unset = table.unsetKeys.filter { $0.provider == provider.id }.map(\.env)
                reason = "provider \(provider.name) has no keys" + (unset.isEmpty ? "" : " (\(unset.joined(separator: ", ")) not set)")
            case .rateLimitedOnEveryKey:
                let holds = health.rateLimitHolds(at: now).filter { $0.name.hasSuffix(" × \(m.name)") || $0.name.hasSuffix("(free models)") }
                reason = "rate-limited on every key: "
                    + holds.map { "\($0.name) \($0.hold.scope.text) until \($0.hold.until) (\($0.hold.reason))" }.joined(separator: "; ")
            case .noUsableKey:
                let provider = table.providers[m.provider]
                let states = provider.keys.map { k in
                    let (state, why) = health.keyState(k, at: now)
                    return "\(table.keys[k].label) \(state.name)\(state.until.map { " until \($0)" } ?? "") (\(why))"
                }
                reason = "no usable key: " + states.joined(separator: "; ")
            }
            return Skip(model: m.name, reason: reason)
        }
    }

    /// `headroom` order: each key's requests left and success rate; plain rotation says so.
    static func keyOrder(_ keys: [KeyID], table: RoutingTable, health: HealthBook, at now: Timestamp) -> String {
        guard keys.count > 1 else { return keys.isEmpty ? "" : "the only usable key" }
        switch table.routing.keySelection {
        case .roundRobin:
            return "round robin"
        case .headroom:
            let parts = keys.map { "\(table.keys[$0].label): \(health.keyRank($0, at: now).text)" }
            return "headroom (most requests left, then success rate in 10% bands, 90% and up alike; round robin among equals): " + parts.joined(separator: "; ")
        }
    }

    /// Plain-text lines for a terminal.
    public var lines: [String] {
        var out: [String] = []
        out.append(
            "route \(route) (prefer \(prefer.rawValue)): \(promptTokens) prompt tokens + \(reservedOutput) reserved for output = \(neededTokens) tokens needed"
        )
        out.append("")
        if candidates.isEmpty {
            out.append("no eligible model: the request would be refused")
        } else {
            out.append("candidates, in the order they are tried:")
            let width = candidates.map(\.model.count).max() ?? 0
            for c in candidates {
                let name = c.model.padding(toLength: width)
                out.append("  \(c.rank). \(name)  \(c.provider) \(c.upstream)  context \(c.context), speed \(c.speed), quality \(c.quality)")
                out.append("     \(String(repeating: " ", count: width))  \(c.why)")
                out.append("     \(String(repeating: " ", count: width))  keys: \(c.keys.joined(separator: ", "))")
                if !c.keyOrder.isEmpty { out.append("     \(String(repeating: " ", count: width))  key order: \(c.keyOrder)") }
            }
        }
        if !skipped.isEmpty {
            out.append("")
            out.append("skipped:")
            for s in skipped { out.append("  - \(s.model): \(s.reason)") }
        }
        return out
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
