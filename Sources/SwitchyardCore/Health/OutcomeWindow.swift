/// Recent outcomes inside a sliding time window, for an error rate in O(1) per record.
///
/// A ring of at most `capacity` entries: with more requests than that inside the window,
/// the rate is over the most recent `capacity` of them.
public struct OutcomeWindow: Sendable {
    private var times: [Int64]
    private var failed: [Bool]
    private var head = 0
    public private(set) var count = 0
    public private(set) var failures = 0

    public init(capacity: Int = 256) {
        times = Array(repeating: 0, count: max(capacity, 1))
        failed = Array(repeating: false, count: max(capacity, 1))
    }

    public var errorRate: Double { count == 0 ? 0 : Double(failures) / Double(count) }

    public mutating func record(failure: Bool, at now: Timestamp, window: Duration) {
        prune(now: now, window: window)
        if count == times.count { dropOldest() }
        let slot = (head + count) % times.count
        times[slot] = now.nanosecondsSinceEpoch
        failed[slot] = failure
        count += 1
        if failure { failures += 1 }
    }

    public mutating func prune(now: Timestamp, window: Duration) {
        let horizon = (now - window).nanosecondsSinceEpoch
        while count > 0, times[head] <= horizon { dropOldest() }
    }

    public mutating func reset() {
        head = 0
        count = 0
        failures = 0
    }

    private mutating func dropOldest() {
        if failed[head] { failures -= 1 }
        head = (head + 1) % times.count
        count -= 1
    }
}
