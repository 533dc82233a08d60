/// Whether a request may be answered from the cache and whether its answer may be stored.
public struct CachePolicy: Sendable, Equatable {
    public var lookup: Bool
    public var store: Bool

    public static let normal = CachePolicy(lookup: true, store: true)
    public static let bypass = CachePolicy(lookup: false, store: false)

    /// From `Cache-Control` (`no-cache`: do not answer from the cache but store; `no-store`: neither),
    /// the route's `cache:` switch and the table's `cache.enabled`.
    public static func decide(cacheControl: String?, routeEnabled: Bool, cacheEnabled: Bool) -> CachePolicy {
        guard cacheEnabled, routeEnabled else { return .bypass }
        guard let header = cacheControl?.lowercased() else { return .normal }
        let directives = header.split(separator: ",").map { $0.trimmingSpaces() }
        if directives.contains("no-store") { return .bypass }
        if directives.contains("no-cache") { return CachePolicy(lookup: false, store: true) }
        return .normal
    }

    /// What `x-switchyard-cache` says for a request that was not a hit.
    public var headerWhenNotHit: String { store ? "miss" : "bypass" }
}
