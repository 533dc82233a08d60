import Yams

/// Health, retry and cache settings.
extension TableBuilder {
    func readHealth(_ node: Node) -> HealthSettings {
        var h = HealthSettings()
        let names = [
            "error_rate_to_disable", "min_requests", "window", "disable_for", "max_disable_for", "consecutive_failures_to_cool",
            "cooldown", "max_cooldown", "rate_limit_cooldown", "reprobe_after", "max_reprobe_after", "exhausted_cooldown",
            "model_outage", "model_outage_max", "model_failures_for_outage", "model_cooldown", "incident_window",
        ]
        guard let f = reader.fields(node, "health", allowed: names) else { return h }
        f.assign("error_rate_to_disable", to: &h.errorRateToDisable) { reader.fraction($0, $1, in: 0.01...0.99) }
        f.assign("min_requests", to: &h.minRequests) { reader.int($0, $1, in: 1...10_000) }
        f.assign("window", to: &h.window) { reader.duration($0, $1) }
        f.assign("disable_for", to: &h.disableFor) { reader.duration($0, $1) }
        f.assign("max_disable_for", to: &h.maxDisableFor) { reader.duration($0, $1) }
        f.assign("consecutive_failures_to_cool", to: &h.consecutiveFailuresToCool) { reader.int($0, $1, in: 0...10_000) }
        f.assign("cooldown", to: &h.cooldown) { reader.duration($0, $1) }
        f.assign("max_cooldown", to: &h.maxCooldown) { reader.duration($0, $1) }
        f.assign("rate_limit_cooldown", to: &h.rateLimitCooldown) { reader.duration($0, $1) }
        f.assign("reprobe_after", to: &h.reprobeAfter) { reader.duration($0, $1) }
        f.assign("max_reprobe_after", to: &h.maxReprobeAfter) { reader.duration($0, $1) }
        f.assign("exhausted_cooldown", to: &h.exhaustedCooldown) { reader.duration($0, $1) }
        // `model_cooldown` is the field's earlier name.
        f.assign("model_cooldown", to: &h.modelOutage) { reader.duration($0, $1) }
        f.assign("model_outage", to: &h.modelOutage) { reader.duration($0, $1) }
        f.assign("model_outage_max", to: &h.modelOutageMax) { reader.duration($0, $1) }
        f.assign("model_failures_for_outage", to: &h.modelFailuresForOutage) { reader.int($0, $1, in: 1...10_000) }
        f.assign("incident_window", to: &h.incidentWindow) { reader.duration($0, $1) }
        if h.maxDisableFor < h.disableFor {
            reader.error(f["max_disable_for"] ?? node, "health.max_disable_for", "must be at least disable_for (\(h.disableFor.configText))")
        }
        if h.window <= .zero { reader.error(f["window"] ?? node, "health.window", "must be longer than 0s") }
        if h.modelOutageMax < h.modelOutage {
            reader.error(f["model_outage_max"] ?? node, "health.model_outage_max", "must be at least model_outage (\(h.modelOutage.configText))")
        }
        if h.maxCooldown < h.cooldown {
            reader.error(f["max_cooldown"] ?? node, "health.max_cooldown", "must be at least cooldown (\(h.cooldown.configText))")
        }
        return h
    }

    func readRetry(_ node: Node) -> RetrySettings {
        var r = RetrySettings()
        let names = [
            "max_attempts", "backoff", "backoff_cap", "connect_timeout", "first_token_timeout", "stream_idle_timeout",
            "attempt_timeout", "request_deadline", "same_model_retries", "max_wait",
        ]
        guard let f = reader.fields(node, "retry", allowed: names) else { return r }
        f.assign("max_attempts", to: &r.maxAttempts) { reader.int($0, $1, in: 1...20) }
        f.assign("backoff", to: &r.backoff) { node, path in
            guard let items = reader.list(node, path) else { return nil }
            let values = items.compactMap { reader.duration($0.node, $0.path) }
            guard values.count == items.count else { return nil }
            if values.isEmpty { reader.error(node, path, "list at least one duration, e.g. [0s, 2s, 4s]") }
            return values.isEmpty ? nil : values
        }
        f.assign("backoff_cap", to: &r.backoffCap) { reader.duration($0, $1) }
        f.assign("same_model_retries", to: &r.sameModelRetries) { reader.int($0, $1, in: 0...5) }
        f.assign("max_wait", to: &r.maxWait) { reader.duration($0, $1) }
        for (name, keyPath) in [
            ("connect_timeout", \RetrySettings.connectTimeout), ("first_token_timeout", \.firstTokenTimeout),
            ("stream_idle_timeout", \.streamIdleTimeout), ("attempt_timeout", \.attemptTimeout),
            ("request_deadline", \.requestDeadline),
        ] {
            guard let value = f[name], let d = reader.duration(value, f.path(name)) else { continue }
            if d <= .zero {
                reader.error(value, f.path(name), "must be longer than 0s")
            } else {
                r[keyPath: keyPath] = d
            }
        }
        return r
    }

    func readCache(_ node: Node) -> CacheSettings {
        var c = CacheSettings()
        guard let f = reader.fields(node, "cache", allowed: ["enabled", "scope", "ttl", "max_entries", "max_bytes"]) else { return c }
        f.assign("enabled", to: &c.enabled) { reader.bool($0, $1) }
        f.assign("scope", to: &c.scope) { node, path in
            guard let text = reader.scalar(node, path, expected: "per_client or shared") else { return nil }
            guard let scope = CacheSettings.Scope(rawValue: text) else {
                reader.error(node, path, "'\(text)' is not per_client or shared")
                return nil
            }
            return scope
        }
        f.assign("ttl", to: &c.ttl) { reader.duration($0, $1) }
        f.assign("max_entries", to: &c.maxEntries) { reader.int($0, $1, in: 1...100_000_000) }
        f.assign("max_bytes", to: &c.maxBytes) { reader.byteSize($0, $1) }
        return c
    }
}
