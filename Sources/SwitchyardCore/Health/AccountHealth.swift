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

    /// Requests left before a known limit (configured per minute or per day, or learned from headers); nil when
    /// none is known.
    public func remaining(at now: Timestamp) -> Int? {
        var left: Int?
        func fold(_ n: Int) { left = min(left ?? n, n) }
        if let rpm = requestsPerMinute {
            let horizon = now - .seconds(60)
            fold(rpm - minute.lazy.filter { $0 > horizon }.count)
        }
        if let rpd = requestsPerDay { fold(rpd - (now.nextUTCMidnight == dayStart.nextUTCMidnight ? today : 0)) }
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
