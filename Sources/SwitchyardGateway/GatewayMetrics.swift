import Prometheus
import Locking
import SwitchyardCore

/// Every metric the gateway exposes, declared here and nowhere else (a name registered twice with different
/// labels or types is a crash in swift-prometheus). Labels carry key labels (`openrouter#2`), never key values.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let reported = Locked((cache: CacheStats(), reloads: 0, failures: 0, holds: Set<[String]>()))

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "switchyard", metricName: metric, unitName: unit, helpText: help)
    }

    static let requests = name("requests", "total", "Requests answered, by route, model, key label, outcome and cache result.")
    static let requestDuration = name("request_duration", "seconds", "Time from request to the end of the answer, by route.")
    static let upstreamDuration = name("upstream_duration", "seconds", "Time of one upstream attempt to its answer (or first byte for streams), by model.")
    static let attempts = name("upstream_attempts", "total", "Upstream attempts by model, key label and outcome class.")
    static let failovers = name("failovers", "total", "Attempts beyond the first, by route.")
    static let continuations = name("stream_continuations", "total", "Streams continued on another candidate after output began, by route.")
    static let keyState = name("key_state", "info", "1 for the state each key is in, 0 for the others.")
    static let modelState = name("model_state", "info", "1 for the state each model is in, 0 for the others.")
    static let rateLimitLeft = name(
        "rate_limit_remaining", "seconds",
        "Seconds left of each rate limit held on a pair (key × model), a model on an account, or an account, by subject and scope; 0 once lifted.")
    static let sharedStoreUp = name("shared_store", "up", "1 while the PostgreSQL store shared by replicas takes this replica's writes, 0 while it does not.")
    static let replicaSeen = name(
        "replica_last_seen", "timestamp_seconds", "When each replica sharing the store last wrote to it (those seen in the last 5 s), as Unix time.")
    static let cacheEvents = name("cache", "total", "Cache lookups and changes by event (hit, miss, bypass, store, eviction, expiration).")
    static let cacheBytes = name("cache", "bytes", "Bytes held by the response cache.")
    static let cacheEntries = name("cache", "entries", "Answers held by the response cache.")
    static let reloads = name("config_reloads", "total", "routes.yaml reloads by result (applied, failed).")

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The collectors of one request's labels, looked up once per label set: the registry builds a name and
    /// sorts labels on every lookup, which cost more per request than the routing decision.
    private struct RequestLabels: Hashable {
        var route: String, model: String, key: String, outcome: String, cache: String
    }
    private struct AttemptLabels: Hashable {
        var model: String, key: String, outcome: OutcomeClass
    }
    private let requestCollectors = Memo<RequestLabels, (requests: Counter, duration: DurationHistogram)>()
    private let attemptCollectors = Memo<AttemptLabels, (attempts: Counter, duration: DurationHistogram)>()

    /// Values made once per key under a lock, and read under it after.
    private final class Memo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
        private let values = Locked([Key: Value]())

        func value(_ key: Key, make: () -> Value) -> Value {
            if let known = values.withLock({ $0[key] }) { return known }
            return values.withLock { known in
                if let value = known[key] { return value }
                let value = make()
                known[key] = value
                return value
            }
        }
    }

    func request(route: String, model: String, key: String, status: Int, cache: String, seconds: Double, attempts: Int, continuations: Int) {
        let outcome = status < 400 ? "success" : status < 500 ? "client_error" : "upstream_error"
        let labels = RequestLabels(route: route, model: model, key: key, outcome: outcome, cache: cache)
        let collectors = requestCollectors.value(labels) {
            (
                requests: registry.makeCounter(
                    descriptor: Self.requests, labels: [("route", route), ("model", model), ("key", key), ("outcome", outcome), ("cache", cache)]),
                duration: registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("route", route)], buckets: Self.latencyBuckets)
            )
        }
        collectors.requests.increment()
        collectors.duration.recordNanoseconds(Int64(seconds * 1e9))
        if attempts > 1 { registry.makeCounter(descriptor: Self.failovers, labels: [("route", route)]).increment(by: Int64(attempts - 1)) }
        if continuations > 0 { registry.makeCounter(descriptor: Self.continuations, labels: [("route", route)]).increment(by: Int64(continuations)) }
    }

    func attempt(model: String, key: String, outcome: OutcomeClass, nanoseconds: UInt64) {
        let labels = AttemptLabels(model: model, key: key, outcome: outcome)
        let collectors = attemptCollectors.value(labels) {
            (
                attempts: registry.makeCounter(descriptor: Self.attempts, labels: [("model", model), ("key", key), ("outcome", outcome.rawValue)]),
                duration: registry.makeDurationHistogram(descriptor: Self.upstreamDuration, labels: [("model", model)], buckets: Self.latencyBuckets)
            )
        }
        collectors.attempts.increment()
        collectors.duration.recordNanoseconds(Int64(nanoseconds))
    }

    static let keyStates = ["healthy", "rate_limited", "cooling", "disabled", "probing", "removed", "manually_disabled"]
    static let modelStates = ["healthy", "outage", "probing", "rate_limited", "gone"]

    /// The exposition text: live counters, plus gauges and totals read from health, cache and reloader now.
    public func render(
        snapshot: RoutingSnapshot, cache: CacheStats, reload: ConfigReloader.Status?, sharedStoreUp: Bool? = nil,
        replicas: [(name: String, seen: Timestamp)] = [], now: Timestamp
    ) -> [UInt8] {
        if let sharedStoreUp { registry.makeGauge(descriptor: Self.sharedStoreUp, labels: []).set(to: sharedStoreUp ? 1 : 0) }
        for replica in replicas {
            registry.makeGauge(descriptor: Self.replicaSeen, labels: [("replica", replica.name)]).set(to: Double(replica.seen.millisecondsSinceEpoch) / 1000)
        }
        let table = snapshot.table
        for key in table.keys {
            let state = snapshot.health.keyState(key.id, at: now).state.name
            for name in Self.keyStates {
                registry.makeGauge(descriptor: Self.keyState, labels: [("key", key.label), ("state", name)]).set(to: name == state ? 1.0 : 0.0)
            }
        }
        for model in table.models {
            let state = snapshot.health.modelState(model.id, at: now).state.name
            for name in Self.modelStates {
                registry.makeGauge(descriptor: Self.modelState, labels: [("model", model.name), ("state", name)]).set(to: name == state ? 1.0 : 0.0)
            }
        }
        let holds = snapshot.health.rateLimitHolds(at: now)
        var current = Set<[String]>()
        for (name, hold) in holds {
            current.insert([name, hold.scope.rawValue])
            registry.makeGauge(descriptor: Self.rateLimitLeft, labels: [("subject", name), ("scope", hold.scope.rawValue)])
                .set(to: max((hold.until - now).seconds, 0))
        }
        registry.makeGauge(descriptor: Self.cacheBytes, labels: []).set(to: Double(cache.bytes))
        registry.makeGauge(descriptor: Self.cacheEntries, labels: []).set(to: Double(cache.entries))
        reported.withLock { last in
            let deltas = [
                ("hit", cache.hits - last.cache.hits), ("miss", cache.misses - last.cache.misses), ("bypass", cache.bypasses - last.cache.bypasses),
                ("store", cache.stores - last.cache.stores), ("eviction", cache.evictions - last.cache.evictions),
                ("expiration", cache.expirations - last.cache.expirations),
            ]
            for (event, delta) in deltas {
                registry.makeCounter(descriptor: Self.cacheEvents, labels: [("event", event)]).increment(by: Int64(max(delta, 0)))
            }
            last.cache = cache
            // A hold that lifted reads 0 rather than its last value.
            for lifted in last.holds.subtracting(current) {
                registry.makeGauge(descriptor: Self.rateLimitLeft, labels: [("subject", lifted[0]), ("scope", lifted[1])]).set(to: 0)
            }
            last.holds = current
            if let reload {
                registry.makeCounter(descriptor: Self.reloads, labels: [("result", "applied")]).increment(by: Int64(max(reload.reloads - last.reloads, 0)))
                registry.makeCounter(descriptor: Self.reloads, labels: [("result", "failed")]).increment(by: Int64(max(reload.failures - last.failures, 0)))
                last.reloads = reload.reloads
                last.failures = reload.failures
            }
        }
        return registry.emitToBuffer()
    }
}

// Immutable strings only; swift-prometheus just has not marked it.
extension MetricNameDescriptor: @retroactive @unchecked Sendable {}
