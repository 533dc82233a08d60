import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore

/// Reads the model list of every provider with `sync_catalog: true`, at start and every hour: a configured
/// model the provider no longer lists is taken out of routing, and a changed context length is used.
public struct CatalogSync: Service {
    let store: SnapshotStore
    let upstream: UpstreamClient
    let clock: any WallClock
    let logger: Logger
    let every: Duration

    public init(store: SnapshotStore, upstream: UpstreamClient, clock: any WallClock, logger: Logger, every: Duration = .seconds(3600)) {
        self.store = store
        self.upstream = upstream
        self.clock = clock
        self.logger = logger
        self.every = every
    }

    /// Runs until shutdown (a service that returns early would stop the gateway); a reload may turn syncing on.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await syncNow()
                do { try await Task.sleep(for: every) } catch { break }
            }
        }
    }

    /// Syncs every provider that asks for it; returns the differences from routes.yaml found.
    @discardableResult
    public func syncNow() async -> [CatalogChange] {
        var found: [CatalogChange] = []
        let snapshot = store.snapshot
        for provider in snapshot.table.providers where provider.syncCatalog {
            let now = clock.now()
            // Any key will do for a model list; a usable one is less likely to be refused.
            guard let key = provider.keys.first(where: { k in snapshot.health.withView { $0.isKeyUsable(k, at: now) } }) ?? provider.keys.first
            else { continue }
            let url = provider.baseURL + "/models"
            do {
                let (status, body) = try await upstream.get(url: url, key: snapshot.table.keys[key], timeout: snapshot.table.retry.attemptTimeout)
                guard status == 200, let listing = ModelListing.parse(Array(body.readableBytesView), at: clock.now()) else {
                    logger.warning("catalog: \(provider.name) answered GET /models with \(status); keeping what was known")
                    continue
                }
                let changes = store.updateCatalog(provider: provider.name, listing: listing, now: clock.now())
                for change in changes.new { logger.notice("catalog: \(change)") }
                found += changes.all
            } catch {
                logger.warning("catalog: cannot read \(provider.name)'s model list: \(error)")
            }
        }
        return found
    }
}
