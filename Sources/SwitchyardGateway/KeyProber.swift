import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore

/// Re-probes keys set aside as invalid or exhausted, in the background, at the growing intervals their
/// health sets: OpenRouter's `GET /key`, else `GET /models` with the key. A key that passes comes back
/// without risking a client's request on it.
public struct KeyProber: Service {
    let store: SnapshotStore
    let upstream: UpstreamClient
    let clock: any WallClock
    let logger: Logger
    let activity: GatewayActivity
    let every: Duration

    public init(
        store: SnapshotStore, upstream: UpstreamClient, clock: any WallClock, logger: Logger, activity: GatewayActivity,
        every: Duration = .seconds(5)
    ) {
        self.store = store
        self.upstream = upstream
        self.clock = clock
        self.logger = logger
        self.activity = activity
        self.every = every
    }

    public func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await probeDueKeys()
            try? await Task.sleep(for: every)
        }
    }

    /// Probes every key that is due now; returns how many were probed.
    @discardableResult
    public func probeDueKeys() async -> Int {
        let snapshot = store.snapshot
        let table = snapshot.table
        var probed = 0
        for keyID in snapshot.health.keysDueForProbe(at: clock.now()) {
            let (allowed, claimed) = snapshot.health.beginProbe(key: keyID, at: clock.now())
            log(claimed)
            guard allowed else { continue }
            probed += 1
            let key = table.keys[keyID]
            let provider = table.providers[key.provider]
            let url = provider.baseURL + (provider.kind == .openrouter ? "/key" : "/models")
            let outcome: Outcome
            do {
                let (status, body) = try await upstream.get(url: url, key: key, timeout: table.retry.attemptTimeout)
                outcome = snapshot.classifiers[provider.id].classify(
                    status: status, headers: [], body: Array(body.readableBytesView), now: clock.now(), secrets: snapshot.secrets)
            } catch {
                outcome = Outcome(.transient, message: "probe failed: \(error)")
            }
            log(snapshot.health.recordProbe(key: keyID, outcome: outcome, at: clock.now()))
        }
        return probed
    }

    private func log(_ events: [HealthEvent]) {
        activity.report(events, logger: logger)
    }
}
