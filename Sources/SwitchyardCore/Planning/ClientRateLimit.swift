import Locking

/// Per-client request rate limit (`server.client_requests_per_minute`): a token bucket per client token
/// (or per address when the gateway is open), so one app cannot spend every account's quota.
///
/// A bucket holds a minute's worth of requests and refills continuously. Buckets of clients that have
/// been quiet long enough to be full again are dropped, so the table stays small.
public final class ClientRateLimit: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Timestamp
    }

    private let buckets = Locked<[String: Bucket]>([:])
    /// Past this many clients, full buckets are swept before a new one is added.
    static let sweepAbove = 4096

    public init() {}

    /// Takes one request from `client`'s bucket; nil when allowed, else how long until one is.
    public func admit(client: String, perMinute: Int, at now: Timestamp) -> Duration? {
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        return buckets.withLock { all -> Duration? in
            var bucket = all[client] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = max(0, Double((now - bucket.updated).nanoseconds) / 1e9)
            bucket.tokens = min(capacity, bucket.tokens + elapsed * perSecond)
            bucket.updated = now
            defer {
                if all[client] == nil, all.count >= Self.sweepAbove { Self.sweep(&all, capacity: capacity, perSecond: perSecond, now: now) }
                all[client] = bucket
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .milliseconds(Int64(((1 - bucket.tokens) / perSecond * 1000).rounded(.up)))
        }
    }

    var clients: Int { buckets.withLock { $0.count } }

    static func sweep(_ all: inout [String: Bucket], capacity: Double, perSecond: Double, now: Timestamp) {
        all = all.filter { _, b in b.tokens + max(0, Double((now - b.updated).nanoseconds) / 1e9) * perSecond < capacity }
    }
}
