import Synchronization
import SwitchyardCore

/// Running totals and the latest state changes, for `/admin/stats`, the dashboard and `/metrics`.
public final class GatewayActivity: Sendable {
    private struct State {
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
    private let state = Mutex(State())

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

    func record(_ events: [HealthEvent]) {
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
