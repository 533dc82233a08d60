import Locking

/// What the planner needs to know about health, read under one lock per plan.
public protocol HealthView {
    func isKeyUsable(_ key: KeyID, at now: Timestamp) -> Bool
    func isModelUsable(_ model: ModelID, at now: Timestamp) -> Bool
    /// Whether no rate limit narrower than the key holds `model` back on it.
    func isPairUsable(key: KeyID, model: ModelID, at now: Timestamp) -> Bool
    /// Requests the key may still send before a known limit; nil when none is known.
    func keyHeadroom(_ key: KeyID, at now: Timestamp) -> Int?
    /// Recent success rate; nil before the key served anything.
    func keySuccessRate(_ key: KeyID, at now: Timestamp) -> Double?
}

/// A change of state worth one log line, a stats entry and a metric.
public struct HealthEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Subject: Sendable, Equatable {
        case key(KeyID), model(ModelID), account(AccountID), provider(ProviderID)
        /// A hold narrower than a key: a pair, a model on an account, an account's free models.
        case rateLimit(RateLimitSubject)
    }

    public var subject: Subject
    /// `openrouter#2`, `gemma-2-9b`, `openrouter/main`: never key material.
    public var name: String
    public var from: String
    public var to: String
    public var reason: String
    public var until: Timestamp?
    public var at: Timestamp

    public var description: String {
        let kind: String
        switch subject {
        case .key: kind = "key"
        case .model: kind = "model"
        case .account: kind = "account"
        case .provider: kind = "provider"
        case .rateLimit: kind = "rate limit"
        }
        let expiry = until.map { " until \($0)" } ?? ""
        return "\(kind) \(name): \(from) → \(to)\(expiry): \(reason)"
    }
}

/// Every key's, model's, account's and provider's health for one routing table, behind one short-held lock.
///
/// The decision rules live in the value types (`KeyHealth`, `ModelHealth`, …); this type decides blame
/// (whose fault an outcome is) and applies it atomically. Nothing here blocks or does I/O.
public final class HealthBook: Sendable {
    public let table: RoutingTable
    private let state: Locked<HealthState>

    public init(table: RoutingTable, now: Timestamp, carryingOver previous: HealthBook? = nil) {
        self.table = table
        var initial = HealthState(table: table, now: now)
        if let previous {
            previous.state.withLock { old in initial.carryOver(from: old, oldTable: previous.table, newTable: table) }
        }
        state = Locked(initial)
    }

    /// Runs `body` with a consistent view of all health; keep it short, it holds the lock.
    public func withView<R>(_ body: (borrowing HealthState) -> R) -> R {
        state.withLock { body($0) }
    }

    /// Changes state in place under the lock, for restoring saved health.
    func restoreState<R>(_ body: (inout HealthState) -> R) -> R {
        state.withLock { body(&$0) }
    }

    /// Claims `key` for one attempt; false when it became unusable since planning (or its probe is taken).
    /// `reserved`: the shared store counted the send already (`canBegin`).
    public func beginAttempt(key: KeyID, model: ModelID, at now: Timestamp, reserved: Bool = false) -> (allowed: Bool, events: [HealthEvent]) {
        state.withLock { s in
            var events: [HealthEvent] = []
            guard s.canBegin(key: key, model: model, at: now, reserved: reserved) else { return (false, events) }
            let (allowed, transition) = s.keys[key].beginAttempt(at: now)
            if let transition { events.append(s.event(key: key, transition, at: now)) }
            // Only now, with the key's claim certain, may a probing model's single trial be taken.
            if allowed, let t = s.models[model].beginAttempt(at: now) { events.append(s.event(model: model, t, at: now)) }
            // The request is about to be sent: it counts toward the account's limits and the key's own.
            if allowed {
                s.accounts[s.keyAccount[key]].count(at: now)
                if s.keyHasQuota[key] { s.keyQuotas[key].count(at: now) }
            }
            return (allowed, events)
        }
    }

    /// Records an attempt's outcome and applies blame; returns the state changes it caused.
    public func record(model: ModelID, key: KeyID, outcome: Outcome, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in s.record(model: model, key: key, outcome: outcome, table: table, at: now) }
    }

    /// Takes in an upstream's rate-limit headers for the account of `key`; an event when they leave it no room.
    public func learn(key: KeyID, _ reading: QuotaReading, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in
            let account = s.keyAccount[key]
            guard s.accounts[account].learn(reading, at: now) else { return [] }
            let a = s.accounts[account]
            return [
                HealthEvent(
                    subject: .account(account), name: s.accountNames[account], from: "healthy", to: "limited",
                    reason: "\(a.limitReason(at: now)) (headers via \(s.keyLabels[key]))", until: a.capacityReturns(at: now), at: now)
            ]
        }
    }

    // MARK: reading

    public func keyState(_ key: KeyID, at now: Timestamp) -> (state: KeyState, reason: String) {
        state.withLock { s in
            let h = s.keys[key]
            let effective = h.effectiveState(at: now)
            if !s.accounts[table.keys[key].account].isUsable(at: now), effective == .healthy {
                let a = s.accounts[table.keys[key].account]
                if let until = a.exhaustedUntil, until > now { return (.rateLimited(until: until), "account: \(a.reason)") }
                return (.rateLimited(until: a.capacityReturns(at: now) ?? now), "account \(table.accounts[table.keys[key].account].name) \(a.limitReason(at: now))")
            }
            if !s.keyQuotaAllows(key, at: now), effective == .healthy {
                return (.rateLimited(until: s.keyQuotas[key].capacityReturns(at: now) ?? now), "key at its configured limit")
            }
            if !s.providers[table.keys[key].provider].isUsable(at: now), effective == .healthy {
                let p = s.providers[table.keys[key].provider]
                return (.cooling(until: p.incidentUntil ?? now), "provider incident: \(p.reason)")
            }
            return (effective, effective == h.state ? h.reason : "\(h.state.name) period ended")
        }
    }

    public func modelState(_ model: ModelID, at now: Timestamp) -> (state: ModelState, reason: String) {
        state.withLock { s in
            let h = s.models[model]
            return (h.effectiveState(at: now), h.reason)
        }
    }

    public func keyHealth(_ key: KeyID) -> KeyHealth { state.withLock { $0.keys[key] } }

    /// The earliest instant any of `keys` becomes usable again, for a 503's Retry-After.
    public func earliestRecovery(of keys: [KeyID], at now: Timestamp) -> Timestamp? {
        state.withLock { s in keys.compactMap { s.keyBack($0, at: now, usableIsNow: false) }.min() }
    }

    /// The earliest instant one of `models` can be sent on one of its keys again (model, key, pair and account
    /// holds all lifted), or nil when none comes back by itself. Decides a 503's Retry-After and whether a
    /// request waits out a short rate limit.
    public func earliestUsable(models: [ModelID], at now: Timestamp) -> Timestamp? {
        state.withLock { s in
            var best: Timestamp?
            for m in models {
                let modelState = s.models[m].effectiveState(at: now)
                let modelBack: Timestamp
                switch modelState {
                case .healthy, .probing: modelBack = now
                default:
                    guard let t = modelState.until else { continue }
                    modelBack = t
                }
                for k in table.providers[table.models[m].provider].keys {
                    guard let keyBack = s.keyBack(k, at: now, usableIsNow: true) else { continue }
                    let pairBack = s.rateLimits.liftsAt(key: k, account: s.keyAccount[k], model: m, at: now) ?? now
                    let t = max(modelBack, keyBack, pairBack)
                    best = min(best ?? t, t)
                }
            }
            return best
        }
    }

    /// Where `headroom` key selection puts a key now.
    public func keyRank(_ key: KeyID, at now: Timestamp) -> KeyRank {
        state.withLock { KeyRank(headroom: $0.keyHeadroom(key, at: now), successRate: $0.keySuccessRate(key, at: now)) }
    }

    /// Holds narrower than a key in force now, named for stats: `groq#1 × llama-3.3-70b`.
    public func rateLimitHolds(at now: Timestamp) -> [(name: String, hold: RateLimitHold)] {
        state.withLock { s in s.rateLimits.active(at: now).map { (s.name(of: $0.subject), $0.hold) } }
    }

    // MARK: re-probing keys set aside

    /// Keys removed as invalid or exhausted whose re-probe time has come.
    public func keysDueForProbe(at now: Timestamp) -> [KeyID] {
        state.withLock { s in
            s.keys.indices.filter { k in
                if case .removed(let until) = s.keys[k].state, now >= until { return s.keys[k].isUsable(at: now) }
                return false
            }
        }
    }

    /// Claims a due key's one trial for a background probe.
    public func beginProbe(key: KeyID, at now: Timestamp) -> (allowed: Bool, events: [HealthEvent]) {
        state.withLock { s in
            let (allowed, transition) = s.keys[key].beginAttempt(at: now)
            return (allowed, transition.map { [s.event(key: key, $0, at: now)] } ?? [])
        }
    }

    /// Records a background probe: only the key's own verdict counts; no model is judged by it.
    public func recordProbe(key: KeyID, outcome: Outcome, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in
            let verdict: KeyVerdict
            switch outcome.kind {
            case .success: verdict = .success
            case .keyInvalid: verdict = .invalid
            case .keyExhausted: verdict = .exhausted(until: outcome.retry?.instant(from: now) ?? now + s.keys[key].settings.exhaustedCooldown)
            case .rateLimited: verdict = .rateLimited(until: outcome.retry?.instant(from: now) ?? now + s.keys[key].settings.rateLimitCooldown)
            default: verdict = .neutral
            }
            let detail = outcome.message.map { "probe: \($0.prefix(200))" } ?? "probe"
            return s.keys[key].record(verdict, at: now, detail: detail).map { [s.event(key: key, $0, at: now)] } ?? []
        }
    }

    // MARK: operator actions

    public func disable(key: KeyID, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in
            s.keys[key].disableManually(at: now).map { [s.event(key: key, $0, at: now)] } ?? []
        }
    }

    public func enable(key: KeyID, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in
            s.keys[key].reset(at: now, reason: "enabled by an operator").map { [s.event(key: key, $0, at: now)] } ?? []
        }
    }

    /// Resets one key (or every key, model, account and provider when `key` is nil) to healthy.
    public func reset(key: KeyID?, at now: Timestamp) -> [HealthEvent] {
        state.withLock { s in
            var events: [HealthEvent] = []
            let keys = key.map { [$0] } ?? Array(s.keys.indices)
            for k in keys {
                if let t = s.keys[k].reset(at: now) { events.append(s.event(key: k, t, at: now)) }
                s.accounts[table.keys[k].account].reset()
                s.rateLimits.clear(key: k)
                s.rateLimits.clear(account: table.keys[k].account)
            }
            if key == nil {
                for m in s.models.indices {
                    if let t = s.models[m].reset(at: now, reason: "reset by an operator") { events.append(s.event(model: m, t, at: now)) }
                }
                for p in s.providers.indices { s.providers[p].reset() }
            }
            return events
        }
    }
}
