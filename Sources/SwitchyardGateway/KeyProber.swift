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
        // Shutdown cancels the sleep at once rather than after up to `every`.
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await probeDueKeys()
                do { try await Task.sleep(for: every) } catch { break }
            }
        }
    }

    /// Probes every key that is due now; returns how many were probed.
    @discardableResult
    public func probeDueKeys() async -> Int {
        let snapshot = store.snapshot
        var probed = 0
        for keyID in snapshot.health.keysDueForProbe(at: clock.now()) {
            let (allowed, claimed) = snapshot.health.beginProbe(key: keyID, at: clock.now())
            log(claimed)
            guard allowed else { continue }
            probed += 1
            let outcome = await probe(keyID, snapshot)
            log(snapshot.health.recordProbe(key: keyID, outcome: outcome, at: clock.now()))
        }
        return probed
    }

    /// Verifies every key of the providers with `check_keys: true` once, before traffic: a key the provider
    /// rejects starts out removed, with the reason. Returns the labels of the keys removed.
    @discardableResult
    public func checkKeys() async -> [String] {
        let snapshot = store.snapshot
        var removed: [String] = []
        for provider in snapshot.table.providers where provider.checkKeys {
            for keyID in provider.keys {
                let outcome = await probe(keyID, snapshot)
                let label = snapshot.table.keys[keyID].label
                switch outcome.kind {
                case .success:
                    logger.info("key check: \(label) accepted by \(provider.name)")
                case .keyInvalid, .keyExhausted, .rateLimited, .accountExhausted:
                    log(snapshot.health.recordProbe(key: keyID, outcome: outcome, at: clock.now()))
                    if !snapshot.health.withView({ $0.isKeyUsable(keyID, at: clock.now()) }) { removed.append(label) }
                default:
                    logger.warning("key check: \(label) could not be verified (\(outcome.message ?? outcome.kind.rawValue)); it starts in service")
                }
            }
        }
        return removed
    }

    /// One probe of a key: OpenRouter's `GET /key`, else `GET /models`, classified like any answer.
    func probe(_ keyID: KeyID, _ snapshot: RoutingSnapshot) async -> Outcome {
        let table = snapshot.table
        let key = table.keys[keyID]
        let provider = table.providers[key.provider]
        let url = provider.baseURL + (provider.kind == .openrouter ? "/key" : "/models")
        do {
            let (status, body) = try await upstream.get(url: url, key: key, timeout: table.retry.attemptTimeout)
            return snapshot.classifiers[provider.id].classify(
                status: status, headers: [], body: Array(body.readableBytesView), now: clock.now(), secrets: snapshot.secrets)
        } catch {
            return Outcome(.transient, message: "probe failed: \(error)")
        }
    }

    private func log(_ events: [HealthEvent]) {
        activity.report(events, logger: logger)
    }
}
