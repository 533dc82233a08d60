/// A configured limit that replicas count together: an account's `account_limits` or a key's own, named as
/// the shared store keeps it (`account:openrouter/main`, `key:openrouter#2`).
public struct SharedQuota: Sendable, Equatable {
    public var subject: String
    public var perMinute: Int?
    public var perDay: Int?

    public init(subject: String, perMinute: Int?, perDay: Int?) {
        self.subject = subject
        self.perMinute = perMinute
        self.perDay = perDay
    }
}

/// What the shared store answered a reservation for one request.
public enum QuotaAnswer: Sendable, Equatable {
    /// Counted against every quota: the request may go.
    case granted
    /// `subject` is at its limit over every replica together; room again at `until`. Nothing was counted.
    case refused(subject: String, until: Timestamp)
    /// No answer within `shared.timeout`: this replica's share of each limit decides.
    case unavailable
}

extension HealthBook {
    /// The quotas a request on `key` must reserve across replicas (its account's, its own); empty when neither
    /// has a configured limit, and then the store is not asked at all.
    public func sharedQuotas(for key: KeyID) -> [SharedQuota] {
        var quotas: [SharedQuota] = []
        let account = table.accounts[table.keys[key].account]
        if account.requestsPerMinute != nil || account.requestsPerDay != nil {
            quotas.append(SharedQuota(subject: "account:" + account.name, perMinute: account.requestsPerMinute, perDay: account.requestsPerDay))
        }
        let k = table.keys[key]
        if k.requestsPerMinute != nil || k.requestsPerDay != nil {
            quotas.append(SharedQuota(subject: "key:" + k.label, perMinute: k.requestsPerMinute, perDay: k.requestsPerDay))
        }
        return quotas
    }

    /// Whether an attempt on `model` with `key` could begin now: what `beginAttempt` checks, claiming nothing.
    /// Asked before a reservation, so no quota is spent on a key that would be refused anyway.
    public func canBegin(key: KeyID, model: ModelID, at now: Timestamp) -> Bool {
        withView { $0.canBegin(key: key, model: model, at: now) }
    }

    /// Carries out the store's answer for a request on `key`: whether it may be sent, and the state changes.
    /// A refusal holds the account (or the key's own quota) until the store said; without an answer this
    /// replica's sends must stay within `1 / share` of each limit.
    public func settle(_ answer: QuotaAnswer, key: KeyID, at now: Timestamp, share: Int) -> (allowed: Bool, events: [HealthEvent]) {
        restoreState { s in
            switch answer {
            case .granted:
                return (true, [])
            case .refused(let subject, let until):
                let account = s.keyAccount[key]
                if subject.hasPrefix("key:") {
                    _ = s.keyQuotas[key].holdAcrossReplicas(until: until, at: now)
                    return (false, [])
                }
                guard s.accounts[account].holdAcrossReplicas(until: until, at: now) else { return (false, []) }
                return (
                    false,
                    [
                        HealthEvent(
                            subject: .account(account), name: s.accountNames[account], from: "healthy", to: "limited",
                            reason: s.accounts[account].limitReason(at: now), until: until, at: now)
                    ]
                )
            case .unavailable:
                let own = !s.keyHasQuota[key] || s.keyQuotas[key].hasCapacity(at: now, share: share)
                return (s.accounts[s.keyAccount[key]].hasCapacity(at: now, share: share) && own, [])
            }
        }
    }

    /// How many replicas share each configured limit while the shared store is unreachable (1 once it is back).
    public func setReplicaShare(_ replicas: Int) {
        restoreState { s in
            let share = max(replicas, 1)
            for a in s.accounts.indices { s.accounts[a].replicaShare = share }
            for k in s.keyQuotas.indices { s.keyQuotas[k].replicaShare = share }
        }
    }
}
