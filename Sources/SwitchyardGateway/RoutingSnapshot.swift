import Synchronization
import SwitchyardCore

/// Everything a request needs to route, built once per routing table and swapped whole on reload:
/// requests in flight keep the snapshot they started with.
public final class RoutingSnapshot: Sendable {
    public let table: RoutingTable
    public let health: HealthBook
    public let planner: RoutePlanner
    public let rotation: KeyRotation
    public let retry: RetryPolicy
    let classifiers: [OutcomeClassifier]
    /// Each model's upstream id as a JSON string literal, ready to splice into a body.
    let upstreamModelJSON: [[UInt8]]
    /// Every key value, for redacting upstream messages that echo one.
    let secrets: [String]

    public init(table: RoutingTable, now: Timestamp, previous: RoutingSnapshot? = nil) {
        self.table = table
        health = HealthBook(table: table, now: now, carryingOver: previous?.health)
        planner = RoutePlanner(table: table)
        rotation = KeyRotation(providers: table.providers.count)
        retry = RetryPolicy(settings: table.retry)
        classifiers = table.providers.map { OutcomeClassifier(provider: $0.kind) }
        upstreamModelJSON = table.models.map { Array(JSONText.quoted($0.upstream).utf8) }
        secrets = table.keys.map(\.secret.value)
    }

    func plan(_ route: Route, _ request: PlanRequest, at now: Timestamp, advance: Bool = true) -> RoutePlan {
        health.withView { planner.plan(route: route, request: request, health: $0, rotation: rotation, at: now, advance: advance) }
    }
}

/// The current snapshot, replaced atomically by a reload.
public final class SnapshotStore: Sendable {
    private let current: Mutex<RoutingSnapshot>

    public init(_ snapshot: RoutingSnapshot) {
        current = Mutex(snapshot)
    }

    public var snapshot: RoutingSnapshot { current.withLock { $0 } }

    /// Builds a snapshot for `table` that keeps the health of keys and models that remain, and swaps it in.
    @discardableResult
    public func replace(with table: RoutingTable, now: Timestamp) -> RoutingSnapshot {
        let next = RoutingSnapshot(table: table, now: now, previous: snapshot)
        current.withLock { $0 = next }
        return next
    }
}
