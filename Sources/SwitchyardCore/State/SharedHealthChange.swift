/// A state change heard from another replica: whom it is about, what and until when, and whether an operator
/// made it. Subjects are named as every replica's table names them (labels, model and account names), never by
/// key material.
public struct SharedHealthChange: Sendable, Equatable {
    public enum Subject: Sendable, Equatable {
        /// A key, tied to the key value it was about by `SavedState.fingerprint`.
        case key(label: String, fingerprint: String)
        /// A model on every key: an outage, an upstream-wide rate limit, gone.
        case model(String)
        /// A rate limit held on one model on one key.
        case pair(key: String, model: String)
        /// A rate limit held on one model on every key of an account.
        case accountModel(account: String, model: String)
        /// An account's limit on its free models.
        case account(String)

        /// How logs name it: `openrouter#2`, `groq#1 × llama-3.3-70b`.
        public var name: String {
            switch self {
            case .key(let label, _): label
            case .model(let model): model
            case .pair(let key, let model): "\(key) × \(model)"
            case .accountModel(let account, let model): "\(account) × \(model)"
            case .account(let account): "\(account) (free models)"
            }
        }
    }

    public var subject: Subject
    /// `healthy` or a state name (`disabled`, `removed`, `cooling`, `rate_limited`, `manually_disabled`, `outage`, `gone`).
    public var state: String
    public var until: Timestamp?
    public var reason: String
    public var byOperator: Bool

    public init(subject: Subject, state: String, until: Timestamp?, reason: String, byOperator: Bool) {
        self.subject = subject
        self.state = state
        self.until = until
        self.reason = reason
        self.byOperator = byOperator
    }
}

extension HealthBook {
    /// Applies a change another replica made when it is at least as restrictive as what this replica holds: an
    /// operator's action always; a set-aside state or a hold when the subject is usable here or held for less
    /// long. Recoveries (a trial that passed, a hold that ran out) stay each replica's own to see, so a remote
    /// `healthy` that no operator made changes nothing.
    public func applyShared(_ change: SharedHealthChange, at now: Timestamp) -> [HealthEvent] {
        restoreState { s in
            switch change.subject {
            case .key(let label, let fingerprint):
                guard let key = table.keys.first(where: { $0.label == label }), SavedState.fingerprint(key.secret) == fingerprint else { return [] }
                return s.applyShared(key: key.id, change, settings: table.health, at: now)
            case .model(let name):
                guard let model = table.model(named: name)?.id, let remote = ModelState(sharedName: change.state, until: change.until) else { return [] }
                return s.models[model].adopt(remote, reason: change.reason, at: now).map { [s.event(model: model, $0, at: now)] } ?? []
            case .pair(let label, let name):
                guard let key = table.key(labelled: label)?.id, let model = table.model(named: name)?.id else { return [] }
                return s.holdShared(.pair(key: key, model: model), change, at: now)
            case .accountModel(let account, let name):
                guard let account = table.accounts.first(where: { $0.name == account })?.id, let model = table.model(named: name)?.id else { return [] }
                return s.holdShared(.accountModel(account: account, model: model), change, at: now)
            case .account(let name):
                guard let account = table.accounts.first(where: { $0.name == name })?.id else { return [] }
                return s.holdShared(.account(account), change, at: now)
            }
        }
    }

    /// The change to tell other replicas about after `event`: a key's, a model's or a rate-limit hold's.
    /// An account's or provider's own state is not sent (quotas are shared through reservations instead).
    public func sharedChange(for event: HealthEvent) -> SharedHealthChange? {
        let subject: SharedHealthChange.Subject
        switch event.subject {
        case .key(let id):
            subject = .key(label: table.keys[id].label, fingerprint: SavedState.fingerprint(table.keys[id].secret))
        case .model(let id):
            subject = .model(table.models[id].name)
        case .rateLimit(.pair(let key, let model)):
            subject = .pair(key: table.keys[key].label, model: table.models[model].name)
        case .rateLimit(.accountModel(let account, let model)):
            subject = .accountModel(account: table.accounts[account].name, model: table.models[model].name)
        case .rateLimit(.account(let account)):
            subject = .account(table.accounts[account].name)
        case .account, .provider:
            return nil
        }
        return SharedHealthChange(
            subject: subject, state: event.to, until: event.until, reason: event.reason, byOperator: event.reason.hasSuffix("by an operator"))
    }
}

extension HealthState {
    mutating func applyShared(key: KeyID, _ change: SharedHealthChange, settings: HealthSettings, at now: Timestamp) -> [HealthEvent] {
        let local = keys[key]
        let current = local.effectiveState(at: now)
        if change.state == "healthy" {
            guard change.byOperator, current != .healthy, let t = keys[key].reset(at: now, reason: change.reason) else { return [] }
            return [event(key: key, t, at: now)]
        }
        guard let remote = KeyState(savedName: change.state, until: change.until) else { return [] }
        if !change.byOperator {
            if current == .manuallyDisabled { return [] }
            if let localUntil = current.until, let remoteUntil = remote.until, localUntil >= remoteUntil { return [] }
        }
        guard current != remote else { return [] }
        keys[key] = KeyHealth(
            settings: settings, state: remote, reason: change.reason, since: now, disableLevel: local.disableLevel, removalLevel: local.removalLevel)
        return [HealthEvent(subject: .key(key), name: keyLabels[key], from: current.name, to: remote.name, reason: change.reason, until: remote.until, at: now)]
    }

    /// Holds `subject` as another replica does, unless a hold as long is in force here.
    mutating func holdShared(_ subject: RateLimitSubject, _ change: SharedHealthChange, at now: Timestamp) -> [HealthEvent] {
        guard change.state == "rate_limited", let until = change.until, until > now, !rateLimits.holds(subject, until: until, at: now) else { return [] }
        rateLimits.hold(subject, RateLimitHold(until: until, reason: change.reason, scope: subject.scope), at: now)
        return [
            HealthEvent(
                subject: .rateLimit(subject), name: name(of: subject), from: "healthy", to: "rate_limited", reason: change.reason, until: until, at: now)
        ]
    }
}

extension HealthBook {
    /// After the shared store was away: takes on every key state still in force on any replica, when at least as
    /// restrictive as this replica's (as if each were heard on the channel again).
    public func resync(_ saved: SavedState, at now: Timestamp) -> [HealthEvent] {
        saved.keys.flatMap { record in
            applyShared(
                SharedHealthChange(
                    subject: .key(label: record.label, fingerprint: record.fingerprint), state: record.state, until: record.until,
                    reason: record.reason, byOperator: record.state == "manually_disabled"),
                at: now)
        }
    }
}
