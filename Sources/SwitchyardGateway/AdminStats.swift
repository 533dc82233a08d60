import SwitchyardCore

/// The JSON of `GET /admin/stats`: every key and model with its state, reason and expiry, the cache, the
/// configuration's reload status and an overall verdict. Keys appear by label and masked form only.
enum AdminStats {
    /// Where health and usage are kept, and for a shared store whether it is up and which replicas it has seen.
    struct StateStatus {
        var location: String
        var shared: Bool
        var up: Bool
        var replicas: [(name: String, seen: Timestamp)]
        /// The shared cache tier's counts, with replicas.
        var cache: SharedCacheTier.Counts?

        /// A replica not seen for this long (five missed writes) is gone from the list: stopped, or killed.
        static let heartbeatExpiry: Duration = .seconds(5)

        init?(_ persister: StatePersister?, now: Timestamp) async {
            guard let persister else { return nil }
            location = persister.path
            shared = persister.isShared
            up = persister.isStoreUp
            replicas = await persister.replicas().filter { now - $0.seen <= Self.heartbeatExpiry }
            cache = persister.cacheTier?.counts
        }

        func json(now: Timestamp) -> String {
            let list = replicas.map { r in
                "{\"name\":\(JSONText.quoted(r.name)),\"seen\":\(AdminStats.time(r.seen)),\"seconds_ago\":\(Int((now - r.seen).seconds.rounded()))}"
            }
            let cacheJSON = cache.map { c in
                "{\"lookups\":\(c.lookups),\"hits\":\(c.hits),\"written\":\(c.written),\"dropped\":\(c.dropped)}"
            } ?? "null"
            return "{\"store\":\(JSONText.quoted(location)),\"shared\":\(shared),\"status\":\"\(up ? "up" : "degraded")\",\"replicas\":[\(list.joined(separator: ","))],\"cache\":\(cacheJSON)}"
        }
    }

    static func json(
        snapshot: RoutingSnapshot, cache: CacheStats, reload: ConfigReloader.Status?, activity: GatewayActivity.Totals,
        latency: GatewayActivity, state: StateStatus? = nil, now: Timestamp
    ) -> String {
        let table = snapshot.table
        var usable = 0
        var keys: [String] = []
        for key in table.keys {
            let (state, reason) = snapshot.health.keyState(key.id, at: now)
            let health = snapshot.health.keyHealth(key.id)
            let ok = state == .healthy || state == .probing
            if ok { usable += 1 }
            let requests = health.window.count
            let failures = health.window.failures
            let rate = requests == 0 ? "null" : String(Double(requests - failures) / Double(requests))
            keys.append(
                "{" + [
                    "\"label\":\(JSONText.quoted(key.label))", "\"masked\":\(JSONText.quoted(key.masked))",
                    "\"provider\":\(JSONText.quoted(table.providers[key.provider].name))",
                    "\"account\":\(JSONText.quoted(table.accounts[key.account].name))", "\"state\":\(JSONText.quoted(state.name))",
                    "\"reason\":\(JSONText.quoted(Redaction.redact(reason, secrets: snapshot.secrets)))", "\"until\":\(time(state.until))",
                    "\"window_requests\":\(requests)", "\"window_failures\":\(failures)", "\"success_rate\":\(rate)",
                    "\"latency_ms\":\(percentiles(latency.latency(key: key.label)))",
                ].joined(separator: ",") + "}")
        }
        var models: [String] = []
        for model in table.models {
            let (state, reason) = snapshot.health.modelState(model.id, at: now)
            // A model the provider's catalog dropped is out whatever its health says.
            let stateName = model.retired == nil ? state.name : "retired"
            models.append(
                "{" + [
                    "\"name\":\(JSONText.quoted(model.name))", "\"upstream\":\(JSONText.quoted(model.upstream))",
                    "\"provider\":\(JSONText.quoted(table.providers[model.provider].name))", "\"context\":\(model.context)",
                    "\"state\":\(JSONText.quoted(stateName))", "\"reason\":\(JSONText.quoted(model.retired ?? reason))",
                    "\"until\":\(model.retired == nil ? time(state.until) : "null")",
                    "\"latency_ms\":\(percentiles(latency.latency(model: model.name)))",
                ].joined(separator: ",") + "}")
        }
        // Holds narrower than a key: `groq#1 × llama-3.3-70b: rate-limited, 12 s left, per model`.
        let holds = snapshot.health.rateLimitHolds(at: now).map { name, hold in
            "{" + [
                "\"subject\":\(JSONText.quoted(name))", "\"state\":\"rate_limited\"", "\"scope\":\(JSONText.quoted(hold.scope.rawValue))",
                "\"scope_text\":\(JSONText.quoted(hold.scope.text))", "\"until\":\(time(hold.until))",
                "\"seconds_left\":\(Int((hold.until - now).seconds.rounded(.up)))",
                "\"reason\":\(JSONText.quoted(Redaction.redact(hold.reason, secrets: snapshot.secrets)))",
            ].joined(separator: ",") + "}"
        }
        let status: String
        if table.keys.isEmpty || usable == 0 {
            status = "down"
        } else if usable == table.keys.count {
            status = "healthy"
        } else if usable * 2 >= table.keys.count {
            status = "degraded"
        } else {
            status = "critical"
        }
        let cacheJSON = "{" + [
            "\"hits\":\(cache.hits)", "\"misses\":\(cache.misses)", "\"bypasses\":\(cache.bypasses)", "\"stores\":\(cache.stores)",
            "\"evictions\":\(cache.evictions)", "\"expirations\":\(cache.expirations)", "\"entries\":\(cache.entries)",
            "\"bytes\":\(cache.bytes)", "\"hit_rate\":\(cache.hitRate)",
        ].joined(separator: ",") + "}"
        var config = "{\"file\":\(JSONText.quoted(table.source))"
        if let reload {
            config += ",\"loaded_at\":\(time(reload.loadedAt)),\"reloads\":\(reload.reloads),\"reload_failures\":\(reload.failures)"
            config += ",\"last_reload_error\":[" + reload.lastError.map { JSONText.quoted($0.description) }.joined(separator: ",") + "]"
        }
        config += "}"
        let events = activity.events.reversed().map { e in
            "{\"at\":\(time(e.at)),\"subject\":\(JSONText.quoted(e.name)),\"from\":\(JSONText.quoted(e.from)),\"to\":\(JSONText.quoted(e.to)),\"until\":\(time(e.until)),\"reason\":\(JSONText.quoted(Redaction.redact(e.reason, secrets: snapshot.secrets)))}"
        }
        let totals = "{\"requests\":\(activity.requests),\"errors\":\(activity.errors),\"cache_hits\":\(activity.cacheHits),\"attempts\":\(activity.attempts),\"failovers\":\(activity.failovers),\"continuations\":\(activity.continuations)}"
        return "{\"status\":\"\(status)\",\"now\":\(time(now)),\"totals\":\(totals),\"events\":[\(events.joined(separator: ","))],\"keys\":[\(keys.joined(separator: ","))],\"models\":[\(models.joined(separator: ","))],\"rate_limits\":[\(holds.joined(separator: ","))],\"cache\":\(cacheJSON),\"config\":\(config),\"state\":\(state?.json(now: now) ?? "null")}"
    }

    static func percentiles(_ p: (Double?, Double?)) -> String {
        func number(_ v: Double?) -> String { v.map { String(($0 * 100).rounded() / 100) } ?? "null" }
        return "{\"p50\":\(number(p.0)),\"p95\":\(number(p.1))}"
    }

    static func time(_ t: Timestamp?) -> String {
        t.map { JSONText.quoted($0.description) } ?? "null"
    }
}
