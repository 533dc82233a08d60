/// Where a model stands, independent of any one key.
public enum ModelState: Sendable, Equatable {
    case healthy
    /// Failing on several keys at once: the model's fault, set aside until `until`.
    case outage(until: Timestamp)
    /// Retired or missing upstream (404, no endpoints): out until `until` or a catalog sync brings it back.
    case gone(until: Timestamp)

    public var name: String {
        switch self {
        case .healthy: "healthy"
        case .outage: "outage"
        case .gone: "gone"
        }
    }

    public var until: Timestamp? {
        switch self {
        case .healthy: nil
        case .outage(let t), .gone(let t): t
        }
    }
}

public struct ModelTransition: Sendable, Equatable {
    public var from: ModelState
    public var to: ModelState
    public var reason: String
}

/// The health of one model: tells a model outage from a bad key.
///
/// A transient failure is the model's when the model has failed on another key too since it last
/// succeeded; then no key is blamed. One key failing alone is the key's.
public struct ModelHealth: Sendable {
    public private(set) var state: ModelState = .healthy
    public private(set) var reason = ""
    public private(set) var since: Timestamp
    private var failingKeys: [(key: KeyID, at: Timestamp)] = []
    private var consecutiveFailures = 0
    public internal(set) var settings: HealthSettings

    public init(settings: HealthSettings, now: Timestamp) {
        self.settings = settings
        self.since = now
    }

    public func effectiveState(at now: Timestamp) -> ModelState {
        if let until = state.until, now >= until { return .healthy }
        return state
    }

    public func isUsable(at now: Timestamp) -> Bool { effectiveState(at: now) == .healthy }

    public mutating func recordSuccess(at now: Timestamp) {
        failingKeys.removeAll(keepingCapacity: true)
        consecutiveFailures = 0
        if state != .healthy, effectiveState(at: now) == .healthy {
            state = .healthy
            reason = "answered again"
            since = now
        }
    }

    /// Records a transient failure on `key`; returns whether it is the model's fault (so the key is not blamed).
    public mutating func recordFailure(
        key: KeyID, providerKeyCount: Int, retry: Timestamp?, detail: String, at now: Timestamp
    ) -> (modelFault: Bool, transition: ModelTransition?) {
        // Already set aside: late failures are the model's too, never a key's.
        if effectiveState(at: now) != .healthy { return (true, nil) }
        let horizon = now - settings.window
        failingKeys.removeAll { $0.at <= horizon || $0.key == key }
        failingKeys.append((key, now))
        consecutiveFailures += 1
        let distinct = failingKeys.count
        let modelFault: Bool
        if providerKeyCount <= 1 {
            modelFault = consecutiveFailures >= max(settings.consecutiveFailuresToCool, 1)
        } else {
            modelFault = distinct >= 2
        }
        guard modelFault else { return (false, nil) }
        let until = max(retry ?? now, now + settings.modelCooldown)
        let why = providerKeyCount <= 1
            ? "\(consecutiveFailures) failures in a row\(detail.isEmpty ? "" : ": \(detail)")"
            : "failing on \(distinct) keys at once\(detail.isEmpty ? "" : ": \(detail)")"
        return (true, move(to: .outage(until: until), reason: why, at: now))
    }

    /// An upstream asked for a pause (503 with Retry-After): honoured for the model, not held against a key.
    public mutating func pause(until: Timestamp, detail: String, at now: Timestamp) -> ModelTransition? {
        if let current = effectiveState(at: now).until, current >= until { return nil }
        return move(to: .outage(until: until), reason: "upstream asked to retry later\(detail.isEmpty ? "" : ": \(detail)")", at: now)
    }

    public mutating func markGone(detail: String, at now: Timestamp) -> ModelTransition? {
        move(to: .gone(until: now + settings.maxReprobeAfter), reason: "gone upstream\(detail.isEmpty ? "" : ": \(detail)")", at: now)
    }

    public mutating func reset(at now: Timestamp, reason: String) -> ModelTransition? {
        failingKeys.removeAll()
        consecutiveFailures = 0
        return move(to: .healthy, reason: reason, at: now)
    }

    private mutating func move(to newState: ModelState, reason: String, at now: Timestamp) -> ModelTransition? {
        let old = effectiveState(at: now)
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
}

/// An account's shared quota: a daily cap reached on one key is reached on all of them, and the account's
/// configured limits are counted here so traffic moves away before the provider says no.
public struct AccountHealth: Sendable, Equatable {
    public private(set) var exhaustedUntil: Timestamp?
    public private(set) var reason = ""
    /// Limits from routes.yaml (`account_limits`); nil counts nothing.
    public var requestsPerMinute: Int?
    public var requestsPerDay: Int?
    /// Send times inside the last minute, oldest first (at most `requestsPerMinute` of them).
    public private(set) var minute: [Timestamp] = []
    public private(set) var dayStart = Timestamp(nanosecondsSinceEpoch: 0)
    public private(set) var today = 0
    /// What the upstream's headers last said is left until their reset, counted down as requests go out.
    public private(set) var learnedRemaining: Int?
    public private(set) var learnedReset: Timestamp?
    /// The upstream said the token budget is empty until then.
    public private(set) var tokensOutUntil: Timestamp?

    public init(requestsPerMinute: Int? = nil, requestsPerDay: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.requestsPerDay = requestsPerDay
    }

    public func isUsable(at now: Timestamp) -> Bool {
        if let until = exhaustedUntil, now < until { return false }
        return hasCapacity(at: now)
    }

    /// Whether one more request fits the account's limits now, configured or learned.
    public func hasCapacity(at now: Timestamp) -> Bool {
        if let rpm = requestsPerMinute {
            let horizon = now - .seconds(60)
            if minute.lazy.filter({ $0 > horizon }).count >= rpm { return false }
        }
        if let rpd = requestsPerDay, now.nextUTCMidnight == dayStart.nextUTCMidnight, today >= rpd { return false }
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { return false }
        if let until = tokensOutUntil, now < until { return false }
        return true
    }

    /// Counts a request sent on one of the account's keys.
    public mutating func count(at now: Timestamp) {
        if requestsPerMinute != nil {
            let horizon = now - .seconds(60)
            minute.removeAll { $0 <= horizon }
            minute.append(now)
        }
        if now.nextUTCMidnight != dayStart.nextUTCMidnight {
            dayStart = now
            today = 0
        }
        today += 1
        if let reset = learnedReset, now < reset, let left = learnedRemaining { learnedRemaining = left - 1 }
    }

    /// Takes in what an upstream's rate-limit headers said. Returns true when it leaves the account with no room.
    ///
    /// Answers can arrive out of order, so within one reset window the lowest count wins; a reading whose
    /// window has passed is replaced by the next one.
    public mutating func learn(_ reading: QuotaReading, at now: Timestamp) -> Bool {
        let hadCapacity = hasCapacity(at: now)
        if let left = reading.remainingRequests, let reset = reading.requestsReset, reset > now {
            if let current = learnedReset, current > now, let known = learnedRemaining {
                learnedRemaining = min(known, left)
                learnedReset = max(current, reset)
            } else {
                learnedRemaining = left
                learnedReset = reset
            }
        }
        if let tokens = reading.remainingTokens, tokens <= 0, let reset = reading.tokensReset, reset > now {
            tokensOutUntil = max(tokensOutUntil ?? reset, reset)
        }
        return hadCapacity && !hasCapacity(at: now)
    }

    /// When the account next has room: the latest of every limit that holds it back now.
    public func capacityReturns(at now: Timestamp) -> Timestamp? {
        guard !hasCapacity(at: now) else { return nil }
        var until: [Timestamp] = []
        if let rpd = requestsPerDay, today >= rpd, now.nextUTCMidnight == dayStart.nextUTCMidnight { until.append(now.nextUTCMidnight) }
        if let rpm = requestsPerMinute {
            let horizon = now - .seconds(60)
            let recent = minute.filter { $0 > horizon }
            // Room returns when enough of the minute's sends have aged out to go below the limit.
            if recent.count >= rpm { until.append(recent[recent.count - rpm] + .seconds(60)) }
        }
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { until.append(reset) }
        if let t = tokensOutUntil, now < t { until.append(t) }
        return until.max()
    }

    /// Why the account holds its keys back now, for stats and logs.
    public func limitReason(at now: Timestamp) -> String {
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { return "upstream reports no requests left" }
        if let t = tokensOutUntil, now < t { return "upstream reports no tokens left" }
        return "at its configured limit"
    }

    public mutating func exhaust(until: Timestamp, reason: String) -> Bool {
        if let current = exhaustedUntil, current >= until { return false }
        exhaustedUntil = until
        self.reason = reason
        return true
    }

    /// Puts back what was saved before a restart: the current windows' counts and any exhaustion.
    public mutating func restore(minute: [Timestamp], dayStart: Timestamp, today: Int, exhaustedUntil: Timestamp?, reason: String) {
        self.minute = minute
        self.dayStart = dayStart
        self.today = today
        if let exhaustedUntil { _ = exhaust(until: exhaustedUntil, reason: reason) }
    }

    public mutating func reset() {
        exhaustedUntil = nil
        reason = ""
        learnedRemaining = nil
        learnedReset = nil
        tokensOutUntil = nil
    }
}

/// Provider-wide signals: many keys rejected at once is an incident, not many dead keys.
public struct ProviderHealth: Sendable {
    private var authFailures: [(key: KeyID, at: Timestamp)] = []
    public private(set) var incidentUntil: Timestamp?
    public private(set) var reason = ""

    public init() {}

    public func isUsable(at now: Timestamp) -> Bool {
        incidentUntil.map { now >= $0 } ?? true
    }

    /// Records a key rejected as invalid. Returns the keys to restore when this makes an incident.
    public mutating func recordAuthFailure(
        key: KeyID, providerKeyCount: Int, settings: HealthSettings, detail: String, at now: Timestamp
    ) -> [KeyID]? {
        let horizon = now - settings.incidentWindow
        authFailures.removeAll { $0.at <= horizon || $0.key == key }
        authFailures.append((key, now))
        let distinct = authFailures.count
        guard distinct >= 2, distinct * 2 > providerKeyCount else { return nil }
        incidentUntil = now + settings.cooldown
        reason = "\(distinct) of \(providerKeyCount) keys rejected within \(settings.incidentWindow.configText)\(detail.isEmpty ? "" : ": \(detail)")"
        let keys = authFailures.map(\.key)
        authFailures.removeAll()
        return keys
    }

    public mutating func reset() {
        authFailures.removeAll()
        incidentUntil = nil
        reason = ""
    }
}
