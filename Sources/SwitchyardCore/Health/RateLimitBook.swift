/// A rate limit held on a scope narrower than a whole key: until when, why, and who it holds back.
public struct RateLimitHold: Sendable, Equatable {
    public var until: Timestamp
    public var reason: String
    public var scope: RateLimitScope
}

/// Rate limits held per `(key, model)` pair, per `(account, model)` and per account, so the planner skips
/// exactly the scope a provider limited: one model's 429 leaves the key's other models serving.
///
/// Whole-key and whole-model limits live in `KeyHealth` and `ModelHealth`. An ambiguous `(key, model)` limit
/// is widened to the whole key only on evidence: a second model of the same key limited inside the window.
public struct RateLimitBook: Sendable {
    let modelCount: Int
    /// `key * modelCount + model`.
    private var pairs: [RateLimitHold?]
    /// `account * modelCount + model`.
    private var accountModels: [RateLimitHold?]
    /// Account-wide limits; OpenRouter's per-minute free-model limit holds back its free models only.
    private var accounts: [RateLimitHold?]
    /// Models served free (`:free`), which an account's free-model limit covers.
    let modelIsFree: [Bool]
    /// Recent `(key, model)` limits per key: the evidence for widening to the whole key.
    private var recent: [[(model: ModelID, at: Timestamp)]]
    /// The expiries alone, for the planner's check of every pair of every plan: no string is touched there.
    private var pairUntil: [Timestamp]
    private var accountModelUntil: [Timestamp]
    private var accountUntil: [Timestamp]

    public init(keys: Int, accounts: Int, models: [Model]) {
        modelCount = models.count
        pairs = Array(repeating: nil, count: keys * models.count)
        accountModels = Array(repeating: nil, count: accounts * models.count)
        self.accounts = Array(repeating: nil, count: accounts)
        modelIsFree = models.map { $0.upstream.hasSuffix(":free") }
        recent = Array(repeating: [], count: keys)
        pairUntil = Array(repeating: .distantPast, count: keys * models.count)
        accountModelUntil = Array(repeating: .distantPast, count: accounts * models.count)
        accountUntil = Array(repeating: .distantPast, count: accounts)
    }

    /// The hold that keeps `model` on `key` (of `account`) back now, the longest when several do.
    public func hold(key: KeyID, account: AccountID, model: ModelID, at now: Timestamp) -> RateLimitHold? {
        var found: RateLimitHold?
        for candidate in [pairs[key * modelCount + model], accountModels[account * modelCount + model], accounts[account]] {
            guard let h = candidate, h.until > now else { continue }
            if h.scope == .account, !modelIsFree[model] { continue }
            if found.map({ h.until > $0.until }) ?? true { found = h }
        }
        return found
    }

    public func allows(key: KeyID, account: AccountID, model: ModelID, at now: Timestamp) -> Bool {
        pairUntil[key * modelCount + model] <= now && accountModelUntil[account * modelCount + model] <= now
            && (accountUntil[account] <= now || !modelIsFree[model])
    }

    /// Holds `model` on `key`. Returns true when another model of the key was limited inside `window` too:
    /// then the limit is the key's, and the caller widens it.
    public mutating func limitPair(key: KeyID, model: ModelID, _ hold: RateLimitHold, window: Duration, at now: Timestamp) -> Bool {
        pairs[key * modelCount + model] = Self.longer(pairs[key * modelCount + model], hold, at: now)
        pairUntil[key * modelCount + model] = pairs[key * modelCount + model]?.until ?? .distantPast
        let horizon = now - window
        recent[key].removeAll { $0.at <= horizon || $0.model == model }
        recent[key].append((model, now))
        return recent[key].count >= 2
    }

    public mutating func limitAccountModel(account: AccountID, model: ModelID, _ hold: RateLimitHold, at now: Timestamp) {
        accountModels[account * modelCount + model] = Self.longer(accountModels[account * modelCount + model], hold, at: now)
        accountModelUntil[account * modelCount + model] = accountModels[account * modelCount + model]?.until ?? .distantPast
    }

    public mutating func limitAccount(_ account: AccountID, _ hold: RateLimitHold, at now: Timestamp) {
        accounts[account] = Self.longer(accounts[account], hold, at: now)
        accountUntil[account] = accounts[account]?.until ?? .distantPast
    }

    /// Whether a hold lasting at least until `until` is on `subject` now.
    public func holds(_ subject: RateLimitSubject, until: Timestamp, at now: Timestamp) -> Bool {
        let current: RateLimitHold?
        switch subject {
        case .pair(let key, let model): current = pairs[key * modelCount + model]
        case .accountModel(let account, let model): current = accountModels[account * modelCount + model]
        case .account(let account): current = accounts[account]
        }
        guard let current, current.until > now else { return false }
        return current.until >= until
    }

    /// Holds `subject` as another replica does: no evidence for widening is gathered from it.
    public mutating func hold(_ subject: RateLimitSubject, _ hold: RateLimitHold, at now: Timestamp) {
        switch subject {
        case .pair(let key, let model):
            pairs[key * modelCount + model] = Self.longer(pairs[key * modelCount + model], hold, at: now)
            pairUntil[key * modelCount + model] = pairs[key * modelCount + model]?.until ?? .distantPast
        case .accountModel(let account, let model): limitAccountModel(account: account, model: model, hold, at: now)
        case .account(let account): limitAccount(account, hold, at: now)
        }
    }

    /// Lifts every hold on `key`'s pairs (an operator's reset of the key).
    public mutating func clear(key: KeyID) {
        for m in 0..<modelCount {
            pairs[key * modelCount + m] = nil
            pairUntil[key * modelCount + m] = .distantPast
        }
        recent[key].removeAll()
    }

    /// Lifts every hold on the account.
    public mutating func clear(account: AccountID) {
        for m in 0..<modelCount {
            accountModels[account * modelCount + m] = nil
            accountModelUntil[account * modelCount + m] = .distantPast
        }
        accounts[account] = nil
        accountUntil[account] = .distantPast
    }

    /// Holds in force now, for stats: pairs, then account-model holds, then account holds.
    public func active(at now: Timestamp) -> [(subject: RateLimitSubject, hold: RateLimitHold)] {
        var out: [(RateLimitSubject, RateLimitHold)] = []
        for (i, h) in pairs.enumerated() { if let h, h.until > now { out.append((.pair(key: i / modelCount, model: i % modelCount), h)) } }
        for (i, h) in accountModels.enumerated() {
            if let h, h.until > now { out.append((.accountModel(account: i / modelCount, model: i % modelCount), h)) }
        }
        for (i, h) in accounts.enumerated() { if let h, h.until > now { out.append((.account(i), h)) } }
        return out
    }

    /// The earliest instant `model` on `key` is free of every hold, or nil when none holds it now.
    public func liftsAt(key: KeyID, account: AccountID, model: ModelID, at now: Timestamp) -> Timestamp? {
        var latest: Timestamp?
        var probe = now
        // Holds can overlap: wait out each one that still holds at the end of the last.
        while let h = hold(key: key, account: account, model: model, at: probe) {
            latest = h.until
            probe = h.until
        }
        return latest
    }

    /// Carries a hold over from an earlier table (reload), by position in the new one.
    mutating func carry(pair old: RateLimitBook, key: KeyID, from oldKey: KeyID, modelMap: [(new: ModelID, old: ModelID)]) {
        for (new, previous) in modelMap {
            pairs[key * modelCount + new] = old.pairs[oldKey * old.modelCount + previous]
            pairUntil[key * modelCount + new] = old.pairUntil[oldKey * old.modelCount + previous]
        }
    }

    mutating func carry(account old: RateLimitBook, account: AccountID, from oldAccount: AccountID, modelMap: [(new: ModelID, old: ModelID)]) {
        for (new, previous) in modelMap {
            accountModels[account * modelCount + new] = old.accountModels[oldAccount * old.modelCount + previous]
            accountModelUntil[account * modelCount + new] = old.accountModelUntil[oldAccount * old.modelCount + previous]
        }
        accounts[account] = old.accounts[oldAccount]
        accountUntil[account] = old.accountUntil[oldAccount]
    }

    private static func longer(_ current: RateLimitHold?, _ new: RateLimitHold, at now: Timestamp) -> RateLimitHold {
        guard let current, current.until > now, current.until >= new.until else { return new }
        return current
    }
}

/// Who a narrower-than-key hold is on, by table index.
public enum RateLimitSubject: Sendable, Equatable {
    case pair(key: KeyID, model: ModelID)
    case accountModel(account: AccountID, model: ModelID)
    case account(AccountID)

    /// The scope a hold on this subject limits.
    public var scope: RateLimitScope {
        switch self {
        case .pair: .keyModel
        case .accountModel: .accountModel
        case .account: .account
        }
    }
}
