import Logging
import Locking
import SwitchyardCore

/// Running totals and the latest state changes, for `/admin/stats`, the dashboard and `/metrics`.
public final class GatewayActivity: Sendable {
    /// The latest upstream latencies of one key or model, for its p50/p95.
    struct LatencyRing {
        var values = [UInt64](repeating: 0, count: 256)
        var count = 0
        var next = 0

        mutating func add(_ ns: UInt64) {
            values[next] = ns
            next = (next + 1) % values.count
            count = min(count + 1, values.count)
        }

        func percentile(_ p: Double) -> Double? {
            guard count > 0 else { return nil }
            let sorted = values[0..<count].sorted()
            return Double(sorted[min(count - 1, Int(Double(count - 1) * p / 100))]) / 1e6
        }
    }

    private struct State {
        var keyLatency: [String: LatencyRing] = [:]
        var modelLatency: [String: LatencyRing] = [:]
        var requests = 0
        var errors = 0
        var cacheHits = 0
        var attempts = 0
        var failovers = 0
        var continuations = 0
        var events: [HealthEvent] = []
    }

    /// How many state changes are kept.
    static let eventCapacity = 50
    private let state = Locked(State())
    /// Told of every state change this replica made (not of those it heard from others): the shared store.
    private let observers = Locked<[@Sendable ([HealthEvent]) -> Void]>([])

    public init() {}

    func request(status: Int, attempts: Int, cacheHit: Bool, continuations: Int = 0) {
        state.withLock { s in
            s.requests += 1
            if status >= 400 { s.errors += 1 }
            if cacheHit { s.cacheHits += 1 }
            s.attempts += attempts
            if attempts > 1 { s.failovers += attempts - 1 }
            s.continuations += continuations
        }
    }

    func attempt(key: String, model: String, nanoseconds: UInt64) {
        state.withLock { s in
            s.keyLatency[key, default: LatencyRing()].add(nanoseconds)
            s.modelLatency[model, default: LatencyRing()].add(nanoseconds)
        }
    }

    /// (p50, p95) in milliseconds of a key's or model's recent upstream attempts.
    func latency(key: String) -> (Double?, Double?) {
        state.withLock { s in (s.keyLatency[key]?.percentile(50), s.keyLatency[key]?.percentile(95)) }
    }

    func latency(model: String) -> (Double?, Double?) {
        state.withLock { s in (s.modelLatency[model]?.percentile(50), s.modelLatency[model]?.percentile(95)) }
    }

    func observe(_ observer: @escaping @Sendable ([HealthEvent]) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// Keeps state changes for the dashboard and logs each once, in the one format operators and bench read.
    /// `shared`: the change was this replica's own, so observers (the shared store) hear of it.
    func report(_ events: [HealthEvent], logger: Logger, shared: Bool = true) {
        guard !events.isEmpty else { return }
        if shared { for observer in observers.withLock({ $0 }) { observer(events) } }
        record(events)
        for event in events {
            logger.notice("health change", metadata: [
                "subject": .string(event.name), "from": .string(event.from), "to": .string(event.to),
                "until": .string(event.until.map { "\($0)" } ?? "-"), "reason": .string(event.reason),
            ])
        }
    }

    private func record(_ events: [HealthEvent]) {
        guard !events.isEmpty else { return }
        state.withLock { s in
            s.events.append(contentsOf: events)
            if s.events.count > Self.eventCapacity { s.events.removeFirst(s.events.count - Self.eventCapacity) }
        }
    }

    public struct Totals: Sendable {
        public var requests, errors, cacheHits, attempts, failovers, continuations: Int
        public var events: [HealthEvent]
    }

    public var totals: Totals {
        state.withLock { Totals(requests: $0.requests, errors: $0.errors, cacheHits: $0.cacheHits, attempts: $0.attempts, failovers: $0.failovers, continuations: $0.continuations, events: $0.events) }
    }
}
