import Locking
import Logging
import SwitchyardCore

/// Reserves a request's configured quotas in the shared store before it is sent (design.md §8), so replicas
/// together never go over a limit. One round trip, bounded by `shared.timeout`, and only for keys whose
/// account (or the key itself) has a configured limit.
///
/// When the store does not answer in time, the gate stops asking it: each replica keeps to its share of every
/// limit (limit ÷ live replicas) and remembers what it sent, until the persister's next write reaches the store
/// again; then those sends are counted there and the store decides once more.
final class SharedQuotaGate: Sendable {
    let store: SharedStateStore
    let timeout: Duration
    let clock: any WallClock
    let logger: Logger

    private struct State {
        var reachable = true
        /// Replicas seen alive at the last look: the divisor of each limit while the store is unreachable.
        var liveReplicas = 1
        /// Sends made on this replica's share while the store was unreachable, by quota subject.
        var unrecorded: [String: [Timestamp]] = [:]
    }

    private let state = Locked(State())

    init(store: SharedStateStore, timeout: Duration, clock: any WallClock, logger: Logger, liveReplicas: Int) {
        state.withLock { $0.liveReplicas = max(liveReplicas, 1) }
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self.logger = logger
    }

    /// Whether a request on `key` may be sent as far as the configured quotas go; `reserved` when they were
    /// checked and counted here (in the store, or against this replica's share), so they need no check again.
    func admit(key: KeyID, health: HealthBook) async -> (allowed: Bool, reserved: Bool, events: [HealthEvent]) {
        let quotas = health.sharedQuotas(for: key)
        guard !quotas.isEmpty else { return (true, false, []) }
        var answer = QuotaAnswer.unavailable
        if state.withLock({ $0.reachable }) {
            do {
                answer = try await store.reserve(quotas, at: clock.now(), timeout: timeout)
            } catch {
                // A slow answer decides nothing about the store: this request keeps to the share, the next asks
                // again. A store that refuses or drops connections is unreachable until a write reaches it.
                if !(error is SharedStoreTimeout) { unreachable(health, because: error) }
            }
        }
        let now = clock.now()
        let settled = health.settle(answer, key: key, at: now, share: state.withLock { $0.liveReplicas })
        if settled.allowed, answer == .unavailable {
            state.withLock { s in
                for quota in quotas { s.unrecorded[quota.subject, default: []].append(now) }
            }
        }
        return (settled.allowed, settled.allowed, settled.events)
    }

    /// What the persister's write found: the store answered (with the replicas alive now) or did not. On the
    /// store's return, the sends of the outage are counted there before it decides again.
    func storeAnswered(_ up: Bool, liveReplicas: Int?, health: HealthBook) async {
        guard up else {
            unreachable(health, because: nil)
            return
        }
        let (wasReachable, sends) = state.withLock { s in
            if let liveReplicas { s.liveReplicas = max(liveReplicas, 1) }
            return (s.reachable, s.unrecorded)
        }
        // Sends admitted while the last count ran are counted at the next write.
        guard !wasReachable || !sends.isEmpty else { return }
        do {
            try await store.countSends(sends, at: clock.now())
        } catch {
            return
        }
        state.withLock { s in
            s.reachable = true
            // Sends made while the count ran are still to be counted: only those counted go.
            for (subject, times) in sends {
                let pending = s.unrecorded[subject] ?? []
                s.unrecorded[subject] = pending.count > times.count ? Array(pending.dropFirst(times.count)) : nil
            }
        }
        guard !wasReachable else { return }
        health.setReplicaShare(1)
        logger.notice("state: quotas counted in the shared store again (\(sends.values.reduce(0) { $0 + $1.count }) sends of the outage added)")
    }

    private func unreachable(_ health: HealthBook, because error: (any Error)?) {
        let (changed, live) = state.withLock { s in
            defer { s.reachable = false }
            return (s.reachable, s.liveReplicas)
        }
        guard changed else { return }
        health.setReplicaShare(live)
        logger.warning(
            "state: shared store unreachable\(error.map { " (\($0))" } ?? ""); each configured limit is kept to this replica's share, 1/\(live)")
    }
}
