import Locking

/// Counters for `/admin/stats` and metrics.
public struct CacheStats: Sendable, Equatable {
    public var hits = 0
    public var misses = 0
    public var bypasses = 0
    public var stores = 0
    public var evictions = 0
    public var expirations = 0
    public var entries = 0
    public var bytes = 0

    public init() {}

    public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
}

/// Answers by request key, bounded by entries and bytes with least-recently-used eviction, each living `ttl`.
///
/// An intrusive doubly linked list over an array gives O(1) lookup, touch, insert and eviction. Expired
/// entries go lazily: a lookup drops the one it finds expired, and every insert checks a few least recently
/// used ones, so no sweep ever stops the world.
public final class ResponseCache: Sendable {
    public struct Limits: Sendable, Equatable {
        public var ttl: Duration
        public var maxEntries: Int
        public var maxBytes: Int

        public init(ttl: Duration, maxEntries: Int, maxBytes: Int) {
            self.ttl = ttl
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
        }
    }

    private struct Node {
        var key: CacheKey
        var answer: CachedAnswer
        var expires: Timestamp
        var cost: Int
        var prev: Int
        var next: Int
    }

    private struct Store {
        var index: [CacheKey: Int] = [:]
        var nodes: [Node] = []
        var free: [Int] = []
        var head = -1  // most recently used
        var tail = -1  // least recently used
        var stats = CacheStats()
        var limits: Limits
    }

    private let store: Locked<Store>

    public init(limits: Limits) {
        var s = Store(limits: limits)
        Self.reserveRoom(&s)
        store = Locked(s)
    }

    public var limits: Limits {
        get { store.withLock { $0.limits } }
    }

    /// Applies new limits (a reload), evicting what no longer fits.
    public func update(limits: Limits, at now: Timestamp) {
        store.withLock { s in
            s.limits = limits
            Self.evictToFit(&s)
            Self.reserveRoom(&s)
        }
    }

    /// Entries whose room is made up front, at most: beyond it the store grows as it fills.
    static let reservedEntriesCap = 1 << 17

    /// Makes room for as many entries as the limits allow (up to `reservedEntriesCap`), so that a filling cache
    /// neither rehashes its index nor copies its nodes as they double. The room is address space: its pages are
    /// touched, and count in the process's memory, only as entries arrive.
    private static func reserveRoom(_ s: inout Store) {
        let room = min(s.limits.maxEntries, s.limits.maxBytes / CachedAnswer.fixedCost, reservedEntriesCap)
        guard room > s.nodes.capacity else { return }
        s.index.reserveCapacity(room)
        s.nodes.reserveCapacity(room)
    }

    /// The stored answer, if any and not expired. A hit is counted here; a miss is counted by `countMiss`
    /// when the request goes upstream (it may yet be served by an identical request in flight).
    public func lookup(_ key: CacheKey, at now: Timestamp) -> CachedAnswer? {
        store.withLock { s in
            guard let i = s.index[key] else { return nil }
            if now >= s.nodes[i].expires {
                Self.remove(&s, i)
                s.stats.expirations += 1
                return nil
            }
            Self.unlink(&s, i)
            Self.pushFront(&s, i)
            s.stats.hits += 1
            return s.nodes[i].answer
        }
    }

    /// Counts a request that did not consult the cache.
    public func countBypass() {
        store.withLock { $0.stats.bypasses += 1 }
    }

    /// Counts a request that goes upstream with its answer to be stored.
    public func countMiss() {
        store.withLock { $0.stats.misses += 1 }
    }

    /// Counts an answer served from another request's upstream call.
    public func countHit() {
        store.withLock { $0.stats.hits += 1 }
    }

    public func store(_ answer: CachedAnswer, for key: CacheKey, at now: Timestamp) {
        store.withLock { s in
            let cost = answer.cost
            guard cost <= s.limits.maxBytes, s.limits.maxEntries > 0 else { return }
            // Incremental clean-up: a few of the least recently used, if expired.
            var checked = 0
            while checked < 2, s.tail >= 0, now >= s.nodes[s.tail].expires {
                Self.remove(&s, s.tail)
                s.stats.expirations += 1
                checked += 1
            }
            if let existing = s.index[key] { Self.remove(&s, existing) }
            let node = Node(key: key, answer: answer, expires: now + s.limits.ttl, cost: cost, prev: -1, next: -1)
            let i: Int
            if let reused = s.free.popLast() {
                s.nodes[reused] = node
                i = reused
            } else {
                s.nodes.append(node)
                i = s.nodes.count - 1
            }
            s.index[key] = i
            Self.pushFront(&s, i)
            s.stats.entries += 1
            s.stats.bytes += cost
            s.stats.stores += 1
            Self.evictToFit(&s)
        }
    }

    public func clear() -> Int {
        store.withLock { s in
            let count = s.index.count
            let stats = s.stats
            s = Store(limits: s.limits)
            Self.reserveRoom(&s)
            s.stats = stats
            s.stats.entries = 0
            s.stats.bytes = 0
            return count
        }
    }

    public var stats: CacheStats { store.withLock { $0.stats } }

    private static func evictToFit(_ s: inout Store) {
        while s.tail >= 0, s.stats.entries > s.limits.maxEntries || s.stats.bytes > s.limits.maxBytes {
            remove(&s, s.tail)
            s.stats.evictions += 1
        }
    }

    private static func remove(_ s: inout Store, _ i: Int) {
        unlink(&s, i)
        s.index[s.nodes[i].key] = nil
        s.stats.entries -= 1
        s.stats.bytes -= s.nodes[i].cost
        s.nodes[i].answer = CachedAnswer(id: "", created: 0, upstreamModel: "", modelName: "", keyLabel: "", content: "", finishReason: "", usageJSON: nil, body: nil)
        s.free.append(i)
    }

    private static func unlink(_ s: inout Store, _ i: Int) {
        let prev = s.nodes[i].prev, next = s.nodes[i].next
        if prev >= 0 { s.nodes[prev].next = next } else if s.head == i { s.head = next }
        if next >= 0 { s.nodes[next].prev = prev } else if s.tail == i { s.tail = prev }
        s.nodes[i].prev = -1
        s.nodes[i].next = -1
    }

    private static func pushFront(_ s: inout Store, _ i: Int) {
        s.nodes[i].prev = -1
        s.nodes[i].next = s.head
        if s.head >= 0 { s.nodes[s.head].prev = i }
        s.head = i
        if s.tail < 0 { s.tail = i }
    }
}
