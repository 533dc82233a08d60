import Locking
import SwitchyardCore

/// The response cache's tier shared by replicas (design.md §8), behind each replica's memory tier: the same
/// keys (scope included), TTL and "complete answers only" rules, so an answer stored through one replica is a
/// hit through the others.
///
/// A local miss asks it once, bounded by `shared.timeout`, and not at all while the store is known to be down.
/// Answers are written with the persister's next write (within a second), in one transaction, off the request
/// path; while the store is down the newest `maxPending` wait for it and older ones are dropped (a cache may
/// forget).
final class SharedCacheTier: Sendable {
    let store: SharedStateStore
    let timeout: Duration

    /// Answers kept for the next write at most; beyond, the oldest are dropped.
    static let maxPending = 1000

    struct Counts: Sendable, Equatable {
        var lookups = 0
        var hits = 0
        var written = 0
        var dropped = 0
    }

    private struct State {
        var pending: [SharedCacheEntry] = []
        var up = true
        var counts = Counts()
    }

    private let state = Locked(State())

    init(store: SharedStateStore, timeout: Duration) {
        self.store = store
        self.timeout = timeout
    }

    var counts: Counts { state.withLock { $0.counts } }

    /// The answer another replica (or this one, before a restart) stored under `key`; nil on a miss, a slow
    /// store or one that is down.
    func lookup(_ key: CacheKey, at now: Timestamp) async -> SharedCacheEntry? {
        guard state.withLock({ s in
            if s.up { s.counts.lookups += 1 }
            return s.up
        }) else { return nil }
        guard let entry = try? await store.cachedAnswer(key, at: now, timeout: timeout) else { return nil }
        state.withLock { $0.counts.hits += 1 }
        return entry
    }

    /// Keeps `answer` for the next write, to expire `ttl` after `now` on every replica.
    func add(_ answer: CachedAnswer, for key: CacheKey, at now: Timestamp, ttl: Duration) {
        let entry = SharedCacheEntry(key: key, answer: answer, storedAt: now, expires: now + ttl)
        state.withLock { s in
            s.pending.append(entry)
            Self.bound(&s)
        }
    }

    /// Writes what was added since the last call and drops expired answers: called by the persister after each
    /// write that reached the store. What cannot be written waits for the next call.
    func flush(at now: Timestamp) async {
        let entries = state.withLock { s in
            defer { s.pending = [] }
            return s.pending
        }
        do {
            try await store.storeAnswers(entries)
            try await store.pruneCache(at: now)
            state.withLock { s in
                s.up = true
                s.counts.written += entries.count
            }
        } catch {
            state.withLock { s in
                s.pending = entries + s.pending
                Self.bound(&s)
            }
        }
    }

    private static func bound(_ s: inout State) {
        let over = s.pending.count - maxPending
        guard over > 0 else { return }
        s.pending.removeFirst(over)
        s.counts.dropped += over
    }

    /// Whether lookups are worth a round trip: the persister's last write reached the store (or did not).
    func storeAnswered(_ up: Bool) {
        state.withLock { $0.up = up }
    }

    /// Empties the shared tier too (an operator's `POST /admin/cache/clear`); answers still to be written go.
    func clear() async throws {
        state.withLock { $0.pending = [] }
        try await store.clearCache()
    }
}
