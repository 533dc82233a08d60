/// An account's shared quota: a daily cap reached on one key is reached on all of them, and the account's
/// configured limits are counted here so traffic moves away before the provider says no.
///
/// With replicas, the shared store counts every replica's sends and this one counts its own: the store's
/// refusal holds the account (`heldAcrossReplicasUntil`), and while the store cannot be reached this replica
/// keeps to its share of each configured limit (`replicaShare`).
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
    /// The shared store said every replica together is at a configured limit until then.
    public private(set) var heldAcrossReplicasUntil: Timestamp?
    /// How many replicas share the configured limits while the shared store is unreachable: this replica may
    /// send `limit / replicaShare` (rounded down) itself. 1 otherwise.
    public var replicaShare = 1

    public init(requestsPerMinute: Int? = nil, requestsPerDay: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.requestsPerDay = requestsPerDay
    }

    public func isUsable(at now: Timestamp) -> Bool {
        !isExhausted(at: now) && hasCapacity(at: now)
    }

    /// Out for the day (a daily cap the upstream reported), whatever the configured limits say.
    public func isExhausted(at now: Timestamp) -> Bool {
        exhaustedUntil.map { now < $0 } ?? false
    }

    /// Whether one more request fits the account's limits now, configured or learned.
    public func hasCapacity(at now: Timestamp) -> Bool {
        hasCapacity(at: now, share: replicaShare)
    }

    /// Whether one more request fits when this replica may send `1 / share` of each configured limit itself.
    public func hasCapacity(at now: Timestamp, share divisor: Int) -> Bool {
        configuredLimitsAllow(at: now, share: divisor) && upstreamAllows(at: now)
    }

    /// The configured limits (and the shared store's hold on them), which a reservation in the store counts.
    func configuredLimitsAllow(at now: Timestamp, share divisor: Int) -> Bool {
        func share(_ limit: Int) -> Int { divisor > 1 ? limit / divisor : limit }
        if let rpm = requestsPerMinute.map(share) {
            let horizon = now - .seconds(60)
            if minute.lazy.filter({ $0 > horizon }).count >= rpm { return false }
        }
        if let rpd = requestsPerDay.map(share), now.nextUTCMidnight == dayStart.nextUTCMidnight, today >= rpd { return false }
        if let until = heldAcrossReplicasUntil, now < until { return false }
        return true
    }

    /// What the upstream's headers said is left, which no reservation covers.
    func upstreamAllows(at now: Timestamp) -> Bool {
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { return false }
        if let until = tokensOutUntil, now < until { return false }
        return true
    }

    /// Requests left before a known limit (configured per minute or per day, or learned from headers); nil when
    /// none is known.
    public func remaining(at now: Timestamp) -> Int? {
        var left: Int?
        func fold(_ n: Int) { left = min(left ?? n, n) }
        if let rpm = requestsPerMinute.map(share) {
            let horizon = now - .seconds(60)
            fold(rpm - minute.lazy.filter { $0 > horizon }.count)
        }
        if let rpd = requestsPerDay.map(share) { fold(rpd - (now.nextUTCMidnight == dayStart.nextUTCMidnight ? today : 0)) }
        if let until = heldAcrossReplicasUntil, now < until { fold(0) }
        if let reset = learnedReset, now < reset, let learned = learnedRemaining { fold(learned) }
        return left.map { max($0, 0) }
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
        if let rpd = requestsPerDay.map(share), today >= rpd, now.nextUTCMidnight == dayStart.nextUTCMidnight { until.append(now.nextUTCMidnight) }
        if let rpm = requestsPerMinute.map(share) {
            let horizon = now - .seconds(60)
            let recent = minute.filter { $0 > horizon }
            // Room returns when enough of the minute's sends have aged out to go below the limit (a share of
            // none: when the last of them has, the earliest the store could be back in the count).
            if recent.count >= rpm { until.append((rpm == 0 ? recent.last ?? now : recent[recent.count - rpm]) + .seconds(60)) }
        }
        if let t = heldAcrossReplicasUntil, now < t { until.append(t) }
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { until.append(reset) }
        if let t = tokensOutUntil, now < t { until.append(t) }
        return until.max()
    }

    /// Why the account holds its keys back now, for stats and logs.
    public func limitReason(at now: Timestamp) -> String {
        if let reset = learnedReset, now < reset, let left = learnedRemaining, left <= 0 { return "upstream reports no requests left" }
        if let t = tokensOutUntil, now < t { return "upstream reports no tokens left" }
        if let t = heldAcrossReplicasUntil, now < t { return "at its configured limit across replicas" }
        if replicaShare > 1 { return "at this replica's share (1/\(replicaShare)) of its configured limit while the shared store is unreachable" }
        return "at its configured limit"
    }

    /// A configured limit as far as this replica may go alone: all of it, or its share while the store is away.
    private func share(_ limit: Int) -> Int { replicaShare > 1 ? limit / replicaShare : limit }

    /// The shared store refused a reservation: every replica together is at a configured limit until `until`.
    /// Returns true when that newly holds the account back.
    public mutating func holdAcrossReplicas(until: Timestamp, at now: Timestamp) -> Bool {
        let wasHeld = heldAcrossReplicasUntil.map { now < $0 } ?? false
        heldAcrossReplicasUntil = max(heldAcrossReplicasUntil ?? until, until)
        return !wasHeld
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
        heldAcrossReplicasUntil = nil
        reason = ""
        learnedRemaining = nil
        learnedReset = nil
        tokensOutUntil = nil
    }
}
