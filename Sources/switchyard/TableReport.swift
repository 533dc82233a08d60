import SwitchyardCore

/// The human-readable form of a routing table, keys masked.
struct TableReport {
    let table: RoutingTable

    var lines: [String] {
        var out: [String] = []
        let keyCount = table.keys.count
        out.append(
            "\(table.source): OK: \(table.providers.count) providers, \(keyCount) keys set, \(table.models.count) models, \(table.routes.count) routes"
        )
        out.append("")
        out.append("providers:")
        for provider in table.providers {
            out.append("  \(provider.name) (\(provider.kind.rawValue)) \(provider.baseURL)")
            let unset = table.unsetKeys.filter { $0.provider == provider.id }
            let declared = provider.keys.map { (table.keys[$0].label, keyLine(table.keys[$0])) } + unset.map { ($0.label, "\($0.label.padding(14)) not set (\($0.env))") }
            for (_, line) in declared.sorted(by: { labelOrder($0.0) < labelOrder($1.0) }) { out.append("    \(line)") }
            for accountID in provider.accounts {
                let account = table.accounts[accountID]
                var limits: [String] = []
                if let rpm = account.requestsPerMinute { limits.append("\(rpm)/min") }
                if let rpd = account.requestsPerDay { limits.append("\(rpd)/day") }
                if !limits.isEmpty { out.append("    account \(account.name): \(limits.joined(separator: ", "))") }
            }
        }
        out.append("")
        out.append("models:")
        let nameWidth = max(table.models.map(\.name.count).max() ?? 0, 5)
        out.append("  \("name".padding(nameWidth))  \("provider".padding(10))  \("context".padding(8))  speed  quality  prefill  upstream")
        for m in table.models {
            out.append(
                "  \(m.name.padding(nameWidth))  \(table.providers[m.provider].name.padding(10))  \(String(m.context).padding(8))  \(String(m.speed).padding(5))  \(String(m.quality).padding(7))  \((m.prefill ? "yes" : "no").padding(7))  \(m.upstream)\(m.maxRequestTokens.map { "  (max request \($0) tokens)" } ?? "")\(m.kind == .embedding ? "  (embedding)" : "")"
            )
        }
        out.append("")
        out.append("routes:")
        for r in table.routes {
            let ranked = r.rankedModels.map { table.models[$0].name }.joined(separator: " > ")
            var extras: [String] = []
            if !r.defaults.isEmpty {
                extras.append("defaults " + r.defaults.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            }
            if !r.cacheEnabled { extras.append("cache off") }
            if r.lastResort != nil { extras.append("last resort answer set") }
            out.append("  \(r.name) (\(r.kind == .embedding ? "embeddings, " : "")prefer \(r.prefer.rawValue)): \(ranked)\(extras.isEmpty ? "" : "  [\(extras.joined(separator: "; "))]")")
        }
        out.append("")
        let h = table.health
        out.append(
            "health: disable a key above \(Int(h.errorRateToDisable * 100))% errors over ≥\(h.minRequests) requests in \(h.window.configText) for \(h.disableFor.configText) (doubling to \(h.maxDisableFor.configText)); cool \(h.cooldown.configText) after \(h.consecutiveFailuresToCool) failures in a row (doubling to \(h.maxCooldown.configText)); model outage \(h.modelOutage.configText) then one trial (doubling to \(h.modelOutageMax.configText)); 429 without Retry-After: \(h.rateLimitCooldown.configText) on the scope it names"
        )
        let r = table.retry
        out.append(
            "retry: \(r.maxAttempts) attempts, backoff \(r.backoff.map(\.configText).joined(separator: ", ")) (cap \(r.backoffCap.configText)); first token \(r.firstTokenTimeout.configText), stream idle \(r.streamIdleTimeout.configText), attempt \(r.attemptTimeout.configText), deadline \(r.requestDeadline.configText); same model \(r.sameModelRetries)x more after a transient fault; wait up to \(r.maxWait.configText) for a rate limit to lift"
        )
        let c = table.cache
        out.append(
            "cache: \(c.enabled ? "on" : "off"), \(c.scope.rawValue), ttl \(c.ttl.configText), \(c.maxEntries) entries, \(c.maxBytes / 1024 / 1024)MB"
        )
        out.append("routing: \(table.routing.defaultOutputTokens) output tokens reserved by default, \(Int((table.routing.contextMargin * 100).rounded()))% context margin")
        if !table.warnings.isEmpty {
            out.append("")
            out.append("warnings:")
            for w in table.warnings { out.append("  \(w)") }
        }
        return out
    }

    private func keyLine(_ key: APIKey) -> String {
        let account = table.accounts[key.account]
        return "\(key.label.padding(14)) \(key.masked.padding(14)) account \(account.name)  (\(key.env))"
    }

    private func labelOrder(_ label: String) -> Int {
        Int(label.split(separator: "#").last ?? "") ?? 0
    }
}

extension String {
    func padding(_ length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
