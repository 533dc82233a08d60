import Locking
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
    /// Each provider's endpoint URLs (by `UpstreamEndpoint`), parsed once; nil for a base URL the upstream client
    /// cannot reach.
    private let upstreamTargets: [[UpstreamTarget?]]

    public init(table: RoutingTable, now: Timestamp, previous: RoutingSnapshot? = nil) {
        self.table = table
        health = HealthBook(table: table, now: now, carryingOver: previous?.health)
        planner = RoutePlanner(table: table)
        rotation = KeyRotation(providers: table.providers.count)
        retry = RetryPolicy(settings: table.retry)
        classifiers = table.providers.map { OutcomeClassifier(provider: $0.kind) }
        upstreamModelJSON = table.models.map { Array(JSONText.quoted($0.upstream).utf8) }
        secrets = table.keys.map(\.secret.value)
        upstreamTargets = table.providers.map { provider in
            UpstreamEndpoint.allCases.map { UpstreamTarget(url: provider.baseURL)?.appending($0.rawValue) }
        }
    }

    /// Where `endpoint` of `provider` is.
    func upstreamTarget(_ provider: ProviderID, _ endpoint: UpstreamEndpoint = .chatCompletions) -> UpstreamTarget? {
        upstreamTargets[provider][endpoint.index]
    }

    func plan(_ route: Route, _ request: PlanRequest, at now: Timestamp, advance: Bool = true) -> RoutePlan {
        health.withView { planner.plan(route: route, request: request, health: $0, rotation: rotation, at: now, advance: advance) }
    }
}

/// The current snapshot, replaced atomically by a reload or a catalog sync.
///
/// It remembers the table routes.yaml gave and the providers' latest catalogs, so a reload keeps what
/// the catalog says and a catalog sync keeps what the file says.
public final class SnapshotStore: Sendable {
    private struct State {
        var snapshot: RoutingSnapshot
        /// The table as loaded, before any catalog was applied.
        var base: RoutingTable
        var listings: [String: ModelListing] = [:]
    }

    private let current: Locked<State>

    public init(_ snapshot: RoutingSnapshot) {
        current = Locked(State(snapshot: snapshot, base: snapshot.table))
    }

    public var snapshot: RoutingSnapshot { current.withLock { $0.snapshot } }

    /// Builds a snapshot for `table` that keeps the health of keys and models that remain, and swaps it in.
    @discardableResult
    public func replace(with table: RoutingTable, now: Timestamp) -> RoutingSnapshot {
        current.withLock { state in
            state.base = table
            let (adjusted, _) = ModelCatalog.apply(state.listings, to: table)
            state.snapshot = RoutingSnapshot(table: adjusted, now: now, previous: state.snapshot)
            return state.snapshot
        }
    }

    /// Takes in a provider's catalog; returns how the table now differs from routes.yaml for that provider,
    /// and which of those differences the previous catalog did not already show.
    public func updateCatalog(provider: String, listing: ModelListing, now: Timestamp) -> (all: [CatalogChange], new: [CatalogChange]) {
        current.withLock { state in
            let before = ModelCatalog.apply(state.listings, to: state.base).1.filter { $0.provider == provider }
            state.listings[provider] = listing
            let (adjusted, changes) = ModelCatalog.apply(state.listings, to: state.base)
            state.snapshot = RoutingSnapshot(table: adjusted, now: now, previous: state.snapshot)
            let all = changes.filter { $0.provider == provider }
            return (all, all.filter { !before.contains($0) })
        }
    }

    /// The latest catalog of each provider that syncs one.
    public var listings: [String: ModelListing] { current.withLock { $0.listings } }
}
