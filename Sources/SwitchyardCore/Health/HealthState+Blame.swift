extension HealthState {
    /// Applies blame for one attempt's outcome: to the key, the model, the pair, the account or nobody.
    mutating func record(model: ModelID, key: KeyID, outcome: Outcome, table: RoutingTable, at now: Timestamp) -> [HealthEvent] {
        var events: [HealthEvent] = []
        let detail = outcome.message.map { String($0.prefix(200)) } ?? ""
        func keyVerdict(_ verdict: KeyVerdict, _ why: String = detail) {
            if let t = keys[key].record(verdict, at: now, detail: why) { events.append(event(key: key, t, at: now)) }
        }
        func modelChange(_ t: ModelTransition?) {
            if let t { events.append(event(model: model, t, at: now)) }
        }
        if ![.success, .transient, .silent].contains(outcome.kind) {
            // Says nothing about the model: a trial it held is free again.
            models[model].recordNeutral(at: now)
        }
        switch outcome.kind {
        case .success:
            keyVerdict(.success)
            modelChange(models[model].recordSuccess(at: now))
        case .transient, .silent:
            if outcome.kind == .transient, let retry = outcome.retry {
                // A pause the upstream asked for is the model's; it is honoured and blames no key.
                if let t = models[model].pause(until: retry.instant(from: now), detail: detail, at: now) {
                    events.append(event(model: model, t, at: now))
                }
                keyVerdict(.neutral)
            } else {
                let why = outcome.kind == .silent ? "no first token in time" : detail
                let keyCount = providerKeyCount[keyProvider[key]]
                let (modelFault, t) = models[model].recordFailure(key: key, providerKeyCount: keyCount, retry: nil, detail: why, at: now)
                modelChange(t)
                let keyFault = !modelFault && (keyCount > 1 || keyFailsOnSeveralModels(key, model: model, at: now))
                keyVerdict(keyFault ? .failure : .neutral, why)
            }
        case .rateLimited:
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.rateLimitCooldown
            let why = detail.isEmpty ? "rate limited (429)" : "429: \(detail)"
            switch outcome.scope ?? .keyModel {
            case .key:
                keyVerdict(.rateLimited(until: until), why)
            case .model:
                modelChange(models[model].rateLimit(until: until, detail: detail, at: now))
                keyVerdict(.neutral)
            case .keyModel, .accountModel, .account:
                events += holdNarrow(outcome.scope ?? .keyModel, key: key, model: model, until: until, reason: why, at: now)
                keyVerdict(.neutral)
            }
        case .accountExhausted:
            let account = keyAccount[key]
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.exhaustedCooldown
            if accounts[account].exhaust(until: until, reason: "daily limit reached via \(keyLabels[key]): \(detail)") {
                events.append(
                    HealthEvent(
                        subject: .account(account), name: accountNames[account], from: "healthy", to: "exhausted",
                        reason: accounts[account].reason, until: until, at: now))
            }
            keyVerdict(.neutral)
        case .keyInvalid:
            let provider = keyProvider[key]
            if let restore = providers[provider].recordAuthFailure(
                key: key, providerKeyCount: providerKeyCount[provider], settings: keys[key].settings, detail: detail, at: now)
            {
                events.append(
                    HealthEvent(
                        subject: .provider(provider), name: providerNames[provider], from: "healthy", to: "incident",
                        reason: providers[provider].reason + "; keys kept, provider paused", until: providers[provider].incidentUntil,
                        at: now))
                for k in restore where keys[k].state.name == "removed" {
                    if let t = keys[k].reset(at: now, reason: "restored: rejection was part of a provider incident") {
                        events.append(event(key: k, t, at: now))
                    }
                }
                keyVerdict(.neutral)
            } else {
                keyVerdict(.invalid, detail.isEmpty ? "rejected as invalid" : "rejected: \(detail)")
            }
        case .keyExhausted:
            let until = outcome.retry?.instant(from: now) ?? now + keys[key].settings.exhaustedCooldown
            keyVerdict(.exhausted(until: until), detail.isEmpty ? "exhausted" : "exhausted: \(detail)")
        case .modelGone:
            if let t = models[model].markGone(detail: detail, at: now) { events.append(event(model: model, t, at: now)) }
            keyVerdict(.neutral)
        case .requestInvalid, .contextTooLong, .requestTooLargeForModel, .contentRefused, .cancelled:
            keyVerdict(.neutral)
        }
        return events
    }

    /// On a provider's only key a transient failure is the key's only when another of its models failed inside
    /// the window too; one model failing alone is that model's (its breaker counts it).
    private mutating func keyFailsOnSeveralModels(_ key: KeyID, model: ModelID, at now: Timestamp) -> Bool {
        let horizon = now - keys[key].settings.window
        keyFailingModels[key].removeAll { $0.at <= horizon || $0.model == model }
        keyFailingModels[key].append((model, now))
        return keyFailingModels[key].count >= 2
    }

    /// Holds a pair, a model on an account, or an account's free models; widens an ambiguous pair limit to the
    /// whole key when a second model of the key is limited inside the window.
    private mutating func holdNarrow(
        _ scope: RateLimitScope, key: KeyID, model: ModelID, until: Timestamp, reason: String, at now: Timestamp
    ) -> [HealthEvent] {
        let hold = RateLimitHold(until: until, reason: reason, scope: scope)
        let account = keyAccount[key]
        let subject: RateLimitSubject
        switch scope {
        case .accountModel:
            rateLimits.limitAccountModel(account: account, model: model, hold, at: now)
            subject = .accountModel(account: account, model: model)
        case .account:
            rateLimits.limitAccount(account, hold, at: now)
            subject = .account(account)
        default:
            let widen = rateLimits.limitPair(key: key, model: model, hold, window: keys[key].settings.window, at: now)
            if widen, let t = keys[key].record(
                .rateLimited(until: until), at: now, detail: "several models limited on this key inside \(keys[key].settings.window.configText): \(reason)")
            {
                return [event(key: key, t, at: now)]
            }
            subject = .pair(key: key, model: model)
        }
        return [
            HealthEvent(
                subject: .rateLimit(subject), name: name(of: subject), from: "healthy", to: "rate_limited", reason: "\(scope.text): \(reason)",
                until: until, at: now)
        ]
    }
}
