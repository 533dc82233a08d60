/// Where a key stands. Every state but `healthy` and `probing` keeps traffic away until it ends.
public enum KeyState: Sendable, Equatable {
    case healthy
    /// A 429: back at `until` (Retry-After, the limit's reset, or `rate_limit_cooldown`).
    case rateLimited(until: Timestamp)
    /// Several failures in a row: a short pause, then a probe.
    case cooling(until: Timestamp)
    /// Error rate above the threshold over the window: out until `until`, then a probe.
    case disabled(until: Timestamp)
    /// One trial request decides: success brings the key back, failure disables it for longer.
    case probing
    /// Invalid or exhausted (401/403/402): re-probed at `until`.
    case removed(until: Timestamp)
    /// Set aside by an operator until enabled again.
    case manuallyDisabled

    public var name: String {
        switch self {
        case .healthy: "healthy"
        case .rateLimited: "rate_limited"
        case .cooling: "cooling"
        case .disabled: "disabled"
        case .probing: "probing"
        case .removed: "removed"
        case .manuallyDisabled: "manually_disabled"
        }
    }

    public var until: Timestamp? {
        switch self {
        case .rateLimited(let t), .cooling(let t), .disabled(let t), .removed(let t): t
        case .healthy, .probing, .manuallyDisabled: nil
        }
    }
}

/// What a key's result means for the key alone, after blame has been decided.
public enum KeyVerdict: Sendable, Equatable {
    case success
    /// Counts toward the error rate and the consecutive-failure count.
    case failure
    case rateLimited(until: Timestamp)
    case invalid
    case exhausted(until: Timestamp)
    /// Not the key's doing (client fault, model fault, cancellation): changes nothing but a pending probe.
    case neutral
}

/// A state change, for the log line, `/admin/stats` and metrics.
public struct KeyTransition: Sendable, Equatable {
    public var from: KeyState
    public var to: KeyState
    public var reason: String
}

/// The health of one key: a pure state machine driven by verdicts and the clock.
///
/// Expiries are applied lazily: a disabled key whose time is up reads as `probing`
/// the next time anyone asks, with no timer to run.
public struct KeyHealth: Sendable {
    public private(set) var state: KeyState = .healthy
    public private(set) var reason: String = ""
    public private(set) var since: Timestamp
    public private(set) var window: OutcomeWindow
    public private(set) var consecutiveFailures = 0
    /// Disable periods since the key last proved healthy: each one lasts twice the one before, up to the cap.
    public private(set) var disableLevel = 0
    /// How many failed re-probes since the key was removed, for growing intervals.
    public private(set) var removalLevel = 0
    /// Cooling periods since the key last proved healthy: each one lasts twice the one before, up to `max_cooldown`.
    public private(set) var coolLevel = 0
    /// Whether the pending trial follows a cooling period (a failed one cools again, longer) rather than a disable.
    private var trialAfterCooling = false
    private var probeStartedAt: Timestamp?
    public internal(set) var settings: HealthSettings
    /// Outcomes recorded since they were last handed to the shared store (successes, failures).
    public private(set) var unshared = (ok: 0, failed: 0)
    /// Other replicas' outcomes of this key, by when they were counted, as last read from the shared store:
    /// the 50% rule weighs them with this replica's own window.
    public private(set) var remote: [OutcomeBucket] = []
    /// When the key last changed state, if it ever did: other replicas' evidence from before it is not weighed.
    private var changedAt: Timestamp?

    /// A probe that never reports back frees its slot after this long.
    static let probeTimeout: Duration = .seconds(120)

    public init(settings: HealthSettings, now: Timestamp) {
        self.settings = settings
        self.since = now
        self.window = OutcomeWindow(capacity: max(256, settings.minRequests * 2))
    }

    /// Restores a persisted or carried-over state.
    public init(settings: HealthSettings, state: KeyState, reason: String, since: Timestamp, disableLevel: Int = 0, removalLevel: Int = 0) {
        self.init(settings: settings, now: since)
        self.state = state
        self.reason = reason
        self.disableLevel = disableLevel
        self.removalLevel = removalLevel
        self.changedAt = since
    }

    /// The state as of `now`, with expiries applied.
    public func effectiveState(at now: Timestamp) -> KeyState {
        switch state {
        case .rateLimited(let until): return now >= until ? .healthy : state
        case .cooling(let until), .disabled(let until), .removed(let until): return now >= until ? .probing : state
        default: return state
        }
    }

    /// Whether a request may be sent with this key now.
    public func isUsable(at now: Timestamp) -> Bool {
        switch effectiveState(at: now) {
        case .healthy: true
        case .probing: probeStartedAt.map { now - $0 >= Self.probeTimeout } ?? true
        default: false
        }
    }

    /// Applies expiries to the stored state; returns the change, if any, for the log.
    @discardableResult
    public mutating func refresh(at now: Timestamp) -> KeyTransition? {
        let effective = effectiveState(at: now)
        guard effective != state else { return nil }
        let reason = effective == .healthy ? "rate limit window ended" : "\(state.name) period ended; one trial request decides"
        if effective == .probing {
            if case .cooling = state { trialAfterCooling = true } else { trialAfterCooling = false }
        }
        return move(to: effective, reason: reason, at: now)
    }

    /// Claims the key for one attempt. A probing key admits one attempt at a time.
    public mutating func beginAttempt(at now: Timestamp) -> (allowed: Bool, transition: KeyTransition?) {
        let transition = refresh(at: now)
        guard isUsable(at: now) else { return (false, transition) }
        if state == .probing { probeStartedAt = now }
        return (true, transition)
    }

    public mutating func record(_ verdict: KeyVerdict, at now: Timestamp, detail: String = "") -> KeyTransition? {
        let pending = refresh(at: now)
        let wasProbing = state == .probing && probeStartedAt != nil
        if wasProbing, verdict != .neutral { probeStartedAt = nil }
        let change: KeyTransition?
        switch verdict {
        case .success:
            window.record(failure: false, at: now, window: settings.window)
            unshared.ok += 1
            consecutiveFailures = 0
            if state == .probing {
                disableLevel = 0
                removalLevel = 0
                coolLevel = 0
                window.reset()
                change = move(to: .healthy, reason: "trial request succeeded", at: now)
            } else {
                change = nil
            }
        case .failure:
            window.record(failure: true, at: now, window: settings.window)
            unshared.failed += 1
            consecutiveFailures += 1
            change = afterFailure(at: now, detail: detail)
        case .rateLimited(let until):
            guard state != .manuallyDisabled else { return pending }
            change = move(to: .rateLimited(until: until), reason: detail.isEmpty ? "rate limited" : detail, at: now)
        case .invalid:
            guard state != .manuallyDisabled else { return pending }
            let interval = Self.scaled(settings.reprobeAfter, level: removalLevel, cap: settings.maxReprobeAfter)
            removalLevel += 1
            change = move(to: .removed(until: now + interval), reason: detail.isEmpty ? "key rejected as invalid" : detail, at: now)
        case .exhausted(let until):
            guard state != .manuallyDisabled else { return pending }
            change = move(to: .removed(until: until), reason: detail.isEmpty ? "key exhausted" : detail, at: now)
        case .neutral:
            if wasProbing { probeStartedAt = nil }
            change = nil
        }
        return change ?? pending
    }

    private mutating func afterFailure(at now: Timestamp, detail: String) -> KeyTransition? {
        switch state {
        case .probing where trialAfterCooling:
            return cool(at: now, reason: "trial request failed\(Self.suffix(detail))")
        case .probing:
            let period = Self.scaled(settings.disableFor, level: disableLevel, cap: settings.maxDisableFor)
            disableLevel += 1
            return move(to: .disabled(until: now + period), reason: "trial request failed\(Self.suffix(detail))", at: now)
        case .healthy:
            if let disabled = disableOnErrorRate(at: now, detail: detail) { return disabled }
            if settings.consecutiveFailuresToCool > 0, consecutiveFailures >= settings.consecutiveFailuresToCool {
                return cool(at: now, reason: "\(consecutiveFailures) failures in a row\(Self.suffix(detail))")
            }
            return nil
        default:
            // Late results of attempts begun before the key was set aside change nothing more.
            return nil
        }
    }

    /// The mission's rule: above `error_rate_to_disable` over at least `min_requests` recent outcomes (this
    /// replica's and, with a shared store, every other's since the key was last set aside), disabled for
    /// `disable_for`, then probed.
    private mutating func disableOnErrorRate(at now: Timestamp, detail: String) -> KeyTransition? {
        let (count, failures, elsewhere) = recentOutcomes(at: now)
        guard count >= settings.minRequests, count > 0, Double(failures) / Double(count) > settings.errorRateToDisable else { return nil }
        let period = Self.scaled(settings.disableFor, level: disableLevel, cap: settings.maxDisableFor)
        disableLevel += 1
        let percent = Int((Double(failures) / Double(count) * 100).rounded())
        let over = elsewhere > 0 ? "\(count) requests on every replica (\(elsewhere) elsewhere)" : "\(count) requests"
        return move(to: .disabled(until: now + period), reason: "error rate \(percent)% over the last \(over)\(Self.suffix(detail))", at: now)
    }

    /// Outcomes inside the window: this replica's, and other replicas' counted since the key's last change of
    /// state (evidence from before a disable must not disable it again after its trial passed). A key that never
    /// changed weighs the whole window: other replicas' clocks and start times are not this one's.
    func recentOutcomes(at now: Timestamp) -> (count: Int, failures: Int, elsewhere: Int) {
        let horizon = max(now - settings.window, changedAt ?? now - settings.window)
        var (count, failures, elsewhere) = (window.count, window.failures, 0)
        for bucket in remote where bucket.at > horizon {
            count += bucket.ok + bucket.failed
            failures += bucket.failed
            elsewhere += bucket.ok + bucket.failed
        }
        return (count, failures, elsewhere)
    }

    /// Hands over the outcomes not yet shared, and forgets them.
    public mutating func takeUnshared() -> (ok: Int, failed: Int) {
        defer { unshared = (0, 0) }
        return unshared
    }

    /// Puts back outcomes that could not be shared, for the next write.
    public mutating func returnUnshared(_ outcomes: (ok: Int, failed: Int)) {
        unshared.ok += outcomes.ok
        unshared.failed += outcomes.failed
    }

    /// Takes in the other replicas' outcomes read from the shared store; disables a healthy key whose combined
    /// error rate is over the threshold.
    public mutating func takeRemote(_ buckets: [OutcomeBucket], at now: Timestamp) -> KeyTransition? {
        remote = buckets
        guard effectiveState(at: now) == .healthy, state == .healthy else { return nil }
        return disableOnErrorRate(at: now, detail: "")
    }

    /// Cools the key for the current level's period: `cooldown`, doubling after each failed trial up to `max_cooldown`.
    private mutating func cool(at now: Timestamp, reason: String) -> KeyTransition? {
        let period = Self.scaled(settings.cooldown, level: coolLevel, cap: settings.maxCooldown)
        coolLevel += 1
        return move(to: .cooling(until: now + period), reason: reason, at: now)
    }

    /// Operator actions.
    public mutating func disableManually(at now: Timestamp) -> KeyTransition? {
        move(to: .manuallyDisabled, reason: "disabled by an operator", at: now)
    }

    public mutating func reset(at now: Timestamp, reason: String = "reset by an operator") -> KeyTransition? {
        window.reset()
        consecutiveFailures = 0
        disableLevel = 0
        removalLevel = 0
        coolLevel = 0
        probeStartedAt = nil
        return move(to: .healthy, reason: reason, at: now)
    }

    private mutating func move(to newState: KeyState, reason: String, at now: Timestamp) -> KeyTransition? {
        let old = state
        state = newState
        self.reason = reason
        since = now
        if newState == .healthy { consecutiveFailures = 0 }
        guard old != newState else { return nil }
        changedAt = now
        return KeyTransition(from: old, to: newState, reason: reason)
    }

    static func scaled(_ base: Duration, level: Int, cap: Duration) -> Duration {
        let factor = Int64(1) << Int64(min(max(level, 0), 20))
        let (ns, overflow) = base.nanoseconds.multipliedReportingOverflow(by: factor)
        if overflow { return cap }
        return min(.nanoseconds(ns), cap)
    }

    private static func suffix(_ detail: String) -> String { detail.isEmpty ? "" : ": \(detail)" }
}
