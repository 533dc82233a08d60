import Locking

/// What the planner needs to know about health, read under one lock per plan.
public protocol HealthView {
    func isKeyUsable(_ key: KeyID, at now: Timestamp) -> Bool
    func isModelUsable(_ model: ModelID, at now: Timestamp) -> Bool
}

/// A change of state worth one log line, a stats entry and a metric.
public struct HealthEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Subject: Sendable, Equatable {
        case key(KeyID), model(ModelID), account(AccountID), provider(ProviderID)
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
    public func beginAttempt(key: KeyID, model: ModelID, at now: Timestamp) -> (allowed: Bool, events: [HealthEvent]) {
        state.withLock { s in
            var events: [HealthEvent] = []
            // Account, provider and model first: claiming a probing key's one trial must not be wasted.
            guard s.accounts[s.keyAccount[key]].isUsable(at: now), s.providers[s.keyProvider[key]].isUsable(at: now),
                s.isModelUsable(model, at: now), s.keyQuotaAllows(key, at: now)
            else { return (false, events) }
            let (allowed, transition) = s.keys[key].beginAttempt(at: now)
            if let transition { events.append(s.event(key: key, transition, at: now)) }
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
        state.withLock { s in
            keys.compactMap { k -> Timestamp? in
                var candidates: [Timestamp] = []
                if let t = s.keys[k].effectiveState(at: now).until { candidates.append(t) }
                if let t = s.accounts[table.keys[k].account].exhaustedUntil, t > now { candidates.append(t) }
                if let t = s.accounts[table.keys[k].account].capacityReturns(at: now) { candidates.append(t) }
                if s.keyHasQuota[k], let t = s.keyQuotas[k].capacityReturns(at: now) { candidates.append(t) }
                if let t = s.providers[table.keys[k].provider].incidentUntil, t > now { candidates.append(t) }
                return candidates.max()
            }.min()
        }
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
            case .keyRateLimited: verdict = .rateLimited(until: outcome.retry?.instant(from: now) ?? now + s.keys[key].settings.rateLimitCooldown)
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

/// The mutable health of one table; only ever touched under `HealthBook`'s lock.
public struct HealthState: HealthView, Sendable {
    var keys: [KeyHealth]
    var models: [ModelHealth]
    var accounts: [AccountHealth]
    var providers: [ProviderHealth]
    /// Each key's own quota counts (`requests_per_minute` / `requests_per_day` on the key); used where `keyHasQuota`.
    var keyQuotas: [AccountHealth]
    let keyHasQuota: [Bool]
    let keyAccount: [AccountID]
    let keyProvider: [ProviderID]
    let keyLabels: [String]
    let modelNames: [String]
    let accountNames: [String]
    let providerNames: [String]
    let providerKeyCount: [Int]

    init(table: RoutingTable, now: Timestamp) {
        keys = table.keys.map { _ in KeyHealth(settings: table.health, now: now) }
        models = table.models.map { _ in ModelHealth(settings: table.health, now: now) }
        accounts = table.accounts.map { AccountHealth(requestsPerMinute: $0.requestsPerMinute, requestsPerDay: $0.requestsPerDay) }
        providers = table.providers.map { _ in ProviderHealth() }
        keyQuotas = table.keys.map { AccountHealth(requestsPerMinute: $0.requestsPerMinute, requestsPerDay: $0.requestsPerDay) }
        keyHasQuota = table.keys.map { $0.requestsPerMinute != nil || $0.requestsPerDay != nil }
        keyAccount = table.keys.map(\.account)
        keyProvider = table.keys.map(\.provider)
        keyLabels = table.keys.map(\.label)
        modelNames = table.models.map(\.name)
        accountNames = table.accounts.map(\.name)
        providerNames = table.providers.map(\.name)
        providerKeyCount = table.providers.map(\.keys.count)
    }

    public func isKeyUsable(_ key: KeyID, at now: Timestamp) -> Bool {
        keys[key].isUsable(at: now) && accounts[keyAccount[key]].isUsable(at: now)
            && providers[keyProvider[key]].isUsable(at: now) && keyQuotaAllows(key, at: now)
    }

    /// Whether the key's own configured quota has room (always, when it has none).
    func keyQuotaAllows(_ key: KeyID, at now: Timestamp) -> Bool {
        !keyHasQuota[key] || keyQuotas[key].hasCapacity(at: now)
    }

    public func keyQuota(_ key: KeyID) -> AccountHealth { keyQuotas[key] }

    public func isModelUsable(_ model: ModelID, at now: Timestamp) -> Bool {
        models[model].isUsable(at: now)
    }

    public func keyHealth(_ key: KeyID) -> KeyHealth { keys[key] }
    public func modelHealth(_ model: ModelID) -> ModelHealth { models[model] }
    public func accountHealth(_ account: AccountID) -> AccountHealth { accounts[account] }
    public func providerHealth(_ provider: ProviderID) -> ProviderHealth { providers[provider] }

    mutating func record(model: ModelID, key: KeyID, outcome: Outcome, table: RoutingTable, at now: Timestamp) -> [HealthEvent] {
        var events: [HealthEvent] = []
        let detail = outcome.message.map { String($0.prefix(200)) } ?? ""
        func keyVerdict(_ verdict: KeyVerdict, _ why: String = detail) {
            if let t = keys[key].record(verdict, at: now, detail: why) { events.append(event(key: key, t, at: now)) }
        }
        switch outcome.kind {
        case .success:
            keyVerdict(.success)
            models[model].recordSuccess(at: now)
        case .transient, .silent:
            if outcome.kind == .transient, let retry = outcome.retry {
                // A pause the upstream asked for is the model's; it is honoured and blames no key.
                if let t = models[model].pause(until: retry.instant(from: now), detail: detail, at: now) {
                    events.append(event(model: model, t, at: now))
                }
                keyVerdict(.neutral)
            } else {
                let why = outcome.kind == .silent ? "no first token in time" : detail
                let (modelFault, t) = models[model].recordFailure(
                    key: key, providerKeyCount: providerKeyCount[keyProvider[key]], retry: nil, detail: why, at: now)
                if let t { events.append(event(model: model, t, at: now)) }
                keyVerdict(modelFault ? .neutral : .failure, why)
            }
        case .keyRateLimited:
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.rateLimitCooldown
            keyVerdict(.rateLimited(until: until), detail.isEmpty ? "rate limited (429)" : "429: \(detail)")
        case .accountExhausted:
            let account = keyAccount[key]
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.exhaustedCooldown
            if accounts[account].exhaust(until: until, reason: "daily limit reached via \(keyLabels[key]): \(detail)") {
                events.append(
                    HealthEvent(
                        subject: .account(account), name: accountNames[account], from: "healthy", to: "exhausted",
                        reason: accounts[account].reason, until: until, at: now))
            }
            keyVerdict(.neutral)
        case .keyInvalid:
            let provider = keyProvider[key]
            if let restore = providers[provider].recordAuthFailure(
                key: key, providerKeyCount: providerKeyCount[provider], settings: keys[key].settings, detail: detail, at: now)
            {
                events.append(
                    HealthEvent(
                        subject: .provider(provider), name: providerNames[provider], from: "healthy", to: "incident",
                        reason: providers[provider].reason + "; keys kept, provider paused", until: providers[provider].incidentUntil,
                        at: now))
                for k in restore where keys[k].state.name == "removed" {
                    if let t = keys[k].reset(at: now, reason: "restored: rejection was part of a provider incident") {
                        events.append(event(key: k, t, at: now))
                    }
                }
                keyVerdict(.neutral)
            } else {
                keyVerdict(.invalid, detail.isEmpty ? "rejected as invalid" : "rejected: \(detail)")
            }
        case .keyExhausted:
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.exhaustedCooldown
            keyVerdict(.exhausted(until: until), detail.isEmpty ? "exhausted" : "exhausted: \(detail)")
        case .modelGone:
            if let t = models[model].markGone(detail: detail, at: now) { events.append(event(model: model, t, at: now)) }
            keyVerdict(.neutral)
        case .requestInvalid, .contextTooLong, .requestTooLargeForModel, .contentRefused, .cancelled:
            keyVerdict(.neutral)
        }
        return events
    }

    func event(key: KeyID, _ t: KeyTransition, at now: Timestamp) -> HealthEvent {
        HealthEvent(subject: .key(key), name: keyLabels[key], from: t.from.name, to: t.to.name, reason: t.reason, until: t.to.until, at: now)
    }

    func event(model: ModelID, _ t: ModelTransition, at now: Timestamp) -> HealthEvent {
        HealthEvent(
            subject: .model(model), name: modelNames[model], from: t.from.name, to: t.to.name, reason: t.reason, until: t.to.until,
            at: now)
    }

    /// Keeps what is known about keys, models, accounts and providers that the new table still has.
    mutating func carryOver(from old: HealthState, oldTable: RoutingTable, newTable: RoutingTable) {
        for key in newTable.keys {
            guard let previous = oldTable.keys.first(where: { $0.label == key.label && $0.secret == key.secret }) else { continue }
            keys[key.id] = old.keys[previous.id]
            keys[key.id].settings = newTable.health
            keyQuotas[key.id] = old.keyQuotas[previous.id]
            keyQuotas[key.id].requestsPerMinute = key.requestsPerMinute
            keyQuotas[key.id].requestsPerDay = key.requestsPerDay
        }
        for model in newTable.models {
            guard let previous = oldTable.model(named: model.name) else { continue }
            models[model.id] = old.models[previous.id]
            models[model.id].settings = newTable.health
        }
        for account in newTable.accounts {
            guard let previous = oldTable.accounts.first(where: { $0.name == account.name }) else { continue }
            accounts[account.id] = old.accounts[previous.id]
            accounts[account.id].requestsPerMinute = account.requestsPerMinute
            accounts[account.id].requestsPerDay = account.requestsPerDay
        }
        for provider in newTable.providers {
            guard let previous = oldTable.providers.first(where: { $0.name == provider.name }) else { continue }
            providers[provider.id] = old.providers[previous.id]
        }
    }
}
