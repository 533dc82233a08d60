/// Where a model stands, independent of any one key.
public enum ModelState: Sendable, Equatable {
    case healthy
    /// Failing on several keys at once (or several times in a row on its provider's only key): set aside until
    /// `until`, then `probing`.
    case outage(until: Timestamp)
    /// The circuit breaker's half-open state: one trial request decides; other requests go elsewhere.
    case probing
    /// Rate-limited for every key (the provider behind it is busy): back at `until`, no trial needed.
    case rateLimited(until: Timestamp)
    /// Retired or missing upstream (404, no endpoints): out until `until` or a catalog sync brings it back.
    case gone(until: Timestamp)

    public var name: String {
        switch self {
        case .healthy: "healthy"
        case .outage: "outage"
        case .probing: "probing"
        case .rateLimited: "rate_limited"
        case .gone: "gone"
        }
    }

    /// A state another replica named (`outage`, `rate_limited`, `gone`, with its expiry); nil for the others,
    /// which no replica hands on.
    public init?(sharedName: String, until: Timestamp?) {
        switch (sharedName, until) {
        case ("outage", let t?): self = .outage(until: t)
        case ("rate_limited", let t?): self = .rateLimited(until: t)
        case ("gone", let t?): self = .gone(until: t)
        default: return nil
        }
    }

    public var until: Timestamp? {
        switch self {
        case .healthy, .probing: nil
        case .outage(let t), .rateLimited(let t), .gone(let t): t
        }
    }
}

public struct ModelTransition: Sendable, Equatable {
    public var from: ModelState
    public var to: ModelState
    public var reason: String
}

/// The health of one model: tells a model outage from a bad key, and brings a fallen model back soon.
///
/// A transient failure is the model's when the model has failed on another key too since it last
/// succeeded (or, on a provider with one key, several times in a row); then no key is blamed.
/// An outage is a circuit breaker: a short first window, then a single trial request; a failed trial
/// doubles the window up to `model_outage_max`, a successful one closes it at once.
public struct ModelHealth: Sendable {
    public private(set) var state: ModelState = .healthy
    public private(set) var reason = ""
    public private(set) var since: Timestamp
    /// Outages since the model last answered: each lasts twice the one before, up to the cap.
    public private(set) var outageLevel = 0
    private var failingKeys: [(key: KeyID, at: Timestamp)] = []
    private var consecutiveFailures = 0
    private var trialStartedAt: Timestamp?
    public internal(set) var settings: HealthSettings

    public init(settings: HealthSettings, now: Timestamp) {
        self.settings = settings
        self.since = now
    }

    public func effectiveState(at now: Timestamp) -> ModelState {
        switch state {
        case .outage(let until): now >= until ? .probing : state
        case .rateLimited(let until), .gone(let until): now >= until ? .healthy : state
        case .healthy, .probing: state
        }
    }

    /// Whether a request may go to this model now: a probing model admits its one trial.
    public func isUsable(at now: Timestamp) -> Bool {
        switch effectiveState(at: now) {
        case .healthy: true
        case .probing: trialStartedAt.map { now - $0 >= KeyHealth.probeTimeout } ?? true
        default: false
        }
    }

    /// Claims the model for one attempt: a probing model's trial is taken. Call only when `isUsable`.
    public mutating func beginAttempt(at now: Timestamp) -> ModelTransition? {
        let transition = refresh(at: now)
        if state == .probing { trialStartedAt = now }
        return transition
    }

    /// Applies expiries to the stored state; the change, if any, for the log.
    @discardableResult
    public mutating func refresh(at now: Timestamp) -> ModelTransition? {
        let effective = effectiveState(at: now)
        guard effective != state else { return nil }
        let why = effective == .probing ? "outage window ended; one trial request decides" : "\(state.name) period ended"
        return move(to: effective, reason: why, at: now)
    }

    public mutating func recordSuccess(at now: Timestamp) -> ModelTransition? {
        failingKeys.removeAll(keepingCapacity: true)
        consecutiveFailures = 0
        let pending = refresh(at: now)
        guard state == .probing else { return pending }
        trialStartedAt = nil
        outageLevel = 0
        return move(to: .healthy, reason: "trial request succeeded", at: now)
    }

    /// An attempt that says nothing about the model (a client fault, a cancellation) frees a trial it held.
    public mutating func recordNeutral(at now: Timestamp) {
        if state == .probing { trialStartedAt = nil }
    }

    /// Records a transient failure on `key`; returns whether it is the model's fault (so the key is not blamed).
    public mutating func recordFailure(
        key: KeyID, providerKeyCount: Int, retry: Timestamp?, detail: String, at now: Timestamp
    ) -> (modelFault: Bool, transition: ModelTransition?) {
        let pending = refresh(at: now)
        if state == .probing, trialStartedAt != nil {
            trialStartedAt = nil
            return (true, openOutage(until: retry, reason: "trial request failed" + Self.suffix(detail), at: now) ?? pending)
        }
        // Already set aside: late failures are the model's too, never a key's.
        if state != .healthy { return (true, pending) }
        let horizon = now - settings.window
        failingKeys.removeAll { $0.at <= horizon || $0.key == key }
        failingKeys.append((key, now))
        consecutiveFailures += 1
        let distinct = failingKeys.count
        let modelFault = providerKeyCount <= 1 ? consecutiveFailures >= settings.modelFailuresForOutage : distinct >= 2
        guard modelFault else { return (false, pending) }
        let why = providerKeyCount <= 1
            ? "\(consecutiveFailures) failures in a row" + Self.suffix(detail)
            : "failing on \(distinct) keys at once" + Self.suffix(detail)
        return (true, openOutage(until: retry, reason: why, at: now) ?? pending)
    }

    /// An upstream asked for a pause (503 with Retry-After): honoured for the model, not held against a key.
    public mutating func pause(until: Timestamp, detail: String, at now: Timestamp) -> ModelTransition? {
        if let current = effectiveState(at: now).until, current >= until { return nil }
        trialStartedAt = nil
        return move(to: .outage(until: until), reason: "upstream asked to retry later" + Self.suffix(detail), at: now)
    }

    /// The provider behind the model is busy for every key: out until `until`, then back without a trial.
    public mutating func rateLimit(until: Timestamp, detail: String, at now: Timestamp) -> ModelTransition? {
        let current = effectiveState(at: now)
        if case .outage = current { return nil }
        if let t = current.until, t >= until { return nil }
        return move(to: .rateLimited(until: until), reason: "rate-limited upstream for every key" + Self.suffix(detail), at: now)
    }

    /// Takes on a state another replica put the model in, unless one that lasts as long holds here. A model
    /// already open here keeps its own breaker level; its trial after `until` is this replica's own.
    public mutating func adopt(_ remote: ModelState, reason: String, at now: Timestamp) -> ModelTransition? {
        guard let until = remote.until, until > now else { return nil }
        let current = effectiveState(at: now)
        if let t = current.until, t >= until { return nil }
        trialStartedAt = nil
        return move(to: remote, reason: reason, at: now)
    }

    public mutating func markGone(detail: String, at now: Timestamp) -> ModelTransition? {
        trialStartedAt = nil
        return move(to: .gone(until: now + settings.maxReprobeAfter), reason: "gone upstream" + Self.suffix(detail), at: now)
    }

    public mutating func reset(at now: Timestamp, reason: String) -> ModelTransition? {
        failingKeys.removeAll()
        consecutiveFailures = 0
        outageLevel = 0
        trialStartedAt = nil
        return move(to: .healthy, reason: reason, at: now)
    }

    /// Opens the breaker for the current level's window (or until the upstream's `retry`, if later).
    private mutating func openOutage(until retry: Timestamp?, reason: String, at now: Timestamp) -> ModelTransition? {
        let window = KeyHealth.scaled(settings.modelOutage, level: outageLevel, cap: settings.modelOutageMax)
        outageLevel += 1
        return move(to: .outage(until: max(retry ?? now, now + window)), reason: reason, at: now)
    }

    private mutating func move(to newState: ModelState, reason: String, at now: Timestamp) -> ModelTransition? {
        let old = state
        state = newState
        self.reason = reason
        since = now
        if newState != .healthy {
            failingKeys.removeAll()
            consecutiveFailures = 0
        }
        guard old != newState else { return nil }
        return ModelTransition(from: old, to: newState, reason: reason)
    }

    private static func suffix(_ detail: String) -> String { detail.isEmpty ? "" : ": \(detail)" }
}
