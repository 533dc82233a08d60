import Locking

/// The mutable health of one table; only ever touched under `HealthBook`'s lock.
public struct HealthState: HealthView, Sendable {
    var keys: [KeyHealth]
    var models: [ModelHealth]
    var accounts: [AccountHealth]
    var providers: [ProviderHealth]
    /// Each key's own quota counts (`requests_per_minute` / `requests_per_day` on the key); used where `keyHasQuota`.
    var keyQuotas: [AccountHealth]
    /// Rate limits narrower than a key: pairs, a model on an account, an account's free models.
    var rateLimits: RateLimitBook
    /// Recent transient failures per key by model: on a provider's only key, the key is to blame only when
    /// several of its models fail; one model failing is the model's.
    var keyFailingModels: [[(model: ModelID, at: Timestamp)]]
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
        rateLimits = RateLimitBook(keys: table.keys.count, accounts: table.accounts.count, models: table.models)
        keyFailingModels = table.keys.map { _ in [] }
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

    /// Whether an attempt on `model` with `key` may begin now. Account, provider and model come before the key:
    /// a probing key's one trial must not be claimed for an attempt that cannot be sent.
    ///
    /// `reserved`: the shared store already counted this send against the configured limits, so they are not
    /// checked again here (a refusal heard meanwhile holds the account for later requests, not this one).
    func canBegin(key: KeyID, model: ModelID, at now: Timestamp, reserved: Bool = false) -> Bool {
        let a = accounts[keyAccount[key]]
        let account = reserved ? !a.isExhausted(at: now) && a.upstreamAllows(at: now) : a.isUsable(at: now)
        return account && providers[keyProvider[key]].isUsable(at: now) && isModelUsable(model, at: now)
            && isPairUsable(key: key, model: model, at: now) && (reserved || keyQuotaAllows(key, at: now)) && keys[key].isUsable(at: now)
    }

    /// Whether the key's own configured quota has room (always, when it has none).
    func keyQuotaAllows(_ key: KeyID, at now: Timestamp) -> Bool {
        !keyHasQuota[key] || keyQuotas[key].hasCapacity(at: now)
    }

    public func keyQuota(_ key: KeyID) -> AccountHealth { keyQuotas[key] }

    public func isModelUsable(_ model: ModelID, at now: Timestamp) -> Bool {
        models[model].isUsable(at: now)
    }

    public func isPairUsable(key: KeyID, model: ModelID, at now: Timestamp) -> Bool {
        rateLimits.allows(key: key, account: keyAccount[key], model: model, at: now)
    }

    /// Requests the key may still send before a known limit (its account's configured or learned ones, its own);
    /// nil when no limit is known.
    public func keyHeadroom(_ key: KeyID, at now: Timestamp) -> Int? {
        let account = accounts[keyAccount[key]].remaining(at: now)
        guard keyHasQuota[key], let own = keyQuotas[key].remaining(at: now) else { return account }
        return min(account ?? own, own)
    }

    /// The key's success rate over its recent window; nil until the window holds `min_requests` outcomes, so one
    /// early failure does not starve a key of the traffic that would show whether it is really bad.
    /// A probing key's window is the evidence that set it aside, not a rank: its trial takes its turn.
    public func keySuccessRate(_ key: KeyID, at now: Timestamp) -> Double? {
        let window = keys[key].window
        guard window.count >= keys[key].settings.minRequests, keys[key].effectiveState(at: now) != .probing else { return nil }
        return 1 - window.errorRate
    }

    public func keyHealth(_ key: KeyID) -> KeyHealth { keys[key] }
    public func modelHealth(_ model: ModelID) -> ModelHealth { models[model] }
    public func accountHealth(_ account: AccountID) -> AccountHealth { accounts[account] }
    public func providerHealth(_ provider: ProviderID) -> ProviderHealth { providers[provider] }

    /// When `key` can be used again as far as the key, its account, its own quota and its provider go; `now` (or
    /// nil, with `usableIsNow` false) when it is usable, nil when it does not come back by itself.
    func keyBack(_ k: KeyID, at now: Timestamp, usableIsNow: Bool) -> Timestamp? {
        if usableIsNow, isKeyUsable(k, at: now) { return now }
        var candidates: [Timestamp] = []
        if let t = keys[k].effectiveState(at: now).until { candidates.append(t) }
        if let t = accounts[keyAccount[k]].exhaustedUntil, t > now { candidates.append(t) }
        if let t = accounts[keyAccount[k]].capacityReturns(at: now) { candidates.append(t) }
        if keyHasQuota[k], let t = keyQuotas[k].capacityReturns(at: now) { candidates.append(t) }
        if let t = providers[keyProvider[k]].incidentUntil, t > now { candidates.append(t) }
        return candidates.max()
    }

    /// The readable name of a narrower-than-key hold: `groq#1 × llama-3.3-70b`, `groq/main × llama-3.3-70b`.
    func name(of subject: RateLimitSubject) -> String {
        switch subject {
        case .pair(let key, let model): "\(keyLabels[key]) × \(modelNames[model])"
        case .accountModel(let account, let model): "\(accountNames[account]) × \(modelNames[model])"
        case .account(let account): "\(accountNames[account]) (free models)"
        }
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
        let modelMap = newTable.models.compactMap { m in oldTable.model(named: m.name).map { (new: m.id, old: $0.id) } }
        for key in newTable.keys {
            guard let previous = oldTable.keys.first(where: { $0.label == key.label && $0.secret == key.secret }) else { continue }
            keys[key.id] = old.keys[previous.id]
            keys[key.id].settings = newTable.health
            keyQuotas[key.id] = old.keyQuotas[previous.id]
            keyQuotas[key.id].requestsPerMinute = key.requestsPerMinute
            keyQuotas[key.id].requestsPerDay = key.requestsPerDay
            rateLimits.carry(pair: old.rateLimits, key: key.id, from: previous.id, modelMap: modelMap)
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
            rateLimits.carry(account: old.rateLimits, account: account.id, from: previous.id, modelMap: modelMap)
        }
        for provider in newTable.providers {
            guard let previous = oldTable.providers.first(where: { $0.name == provider.name }) else { continue }
            providers[provider.id] = old.providers[previous.id]
        }
    }
}
