import Crypto

/// The health worth keeping across a restart: keys set aside with their expiries, and each account's
/// quota counts for its current windows. Healthy keys are not saved; they start healthy anyway.
public struct SavedState: Sendable, Equatable {
    public struct Key: Sendable, Equatable {
        public var label: String
        /// Ties a saved state to the key value it was about, so a label given to a new key starts afresh.
        public var fingerprint: String
        public var state: String
        public var until: Timestamp?
        public var reason: String
        public var disableLevel: Int
        public var removalLevel: Int

        public init(
            label: String, fingerprint: String, state: String, until: Timestamp?, reason: String, disableLevel: Int, removalLevel: Int
        ) {
            self.label = label
            self.fingerprint = fingerprint
            self.state = state
            self.until = until
            self.reason = reason
            self.disableLevel = disableLevel
            self.removalLevel = removalLevel
        }
    }

    public struct Account: Sendable, Equatable {
        public var name: String
        public var exhaustedUntil: Timestamp?
        public var reason: String
        /// Send times within the last minute.
        public var minute: [Timestamp]
        public var dayStart: Timestamp
        public var today: Int

        public init(name: String, exhaustedUntil: Timestamp?, reason: String, minute: [Timestamp], dayStart: Timestamp, today: Int) {
            self.name = name
            self.exhaustedUntil = exhaustedUntil
            self.reason = reason
            self.minute = minute
            self.dayStart = dayStart
            self.today = today
        }
    }

    public var keys: [Key]
    public var accounts: [Account]
    /// The counts of keys with a quota of their own, by label (`name`).
    public var keyQuotas: [Account]

    public init(keys: [Key] = [], accounts: [Account] = [], keyQuotas: [Account] = []) {
        self.keys = keys
        self.accounts = accounts
        self.keyQuotas = keyQuotas
    }

    /// A short one-way digest of a key value: enough to recognise it, useless to anyone who reads it.
    public static func fingerprint(_ secret: Secret) -> String {
        let digest = SHA256.hash(data: Array(secret.value.utf8))
        return digest.prefix(8).map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
        }.joined()
    }
}

extension KeyState {
    /// The state a saved name and expiry stand for; nil for names that are not worth restoring.
    init?(savedName: String, until: Timestamp?) {
        switch (savedName, until) {
        case ("rate_limited", let t?): self = .rateLimited(until: t)
        case ("cooling", let t?): self = .cooling(until: t)
        case ("disabled", let t?): self = .disabled(until: t)
        case ("removed", let t?): self = .removed(until: t)
        case ("manually_disabled", _): self = .manuallyDisabled
        default: return nil
        }
    }
}

extension HealthBook {
    /// What to write to disk now: keys not healthy and every account's counts.
    public func savedState(at now: Timestamp) -> SavedState {
        withView { s in
            var saved = SavedState()
            for key in table.keys {
                let h = s.keyHealth(key.id)
                let state = h.effectiveState(at: now)
                // A probing key's trial decides its fate; until it has, it is still the state it was put in.
                let kept = state == .probing ? h.state : state
                guard kept != .healthy, kept != .probing else { continue }
                saved.keys.append(
                    SavedState.Key(
                        label: key.label, fingerprint: SavedState.fingerprint(key.secret), state: kept.name, until: kept.until,
                        reason: h.reason, disableLevel: h.disableLevel, removalLevel: h.removalLevel))
            }
            let horizon = now - .seconds(60)
            for key in table.keys where s.keyHasQuota[key.id] {
                let q = s.keyQuota(key.id)
                saved.keyQuotas.append(
                    SavedState.Account(
                        name: key.label, exhaustedUntil: nil, reason: "", minute: q.minute.filter { $0 > horizon }, dayStart: q.dayStart,
                        today: q.today))
            }
            for account in table.accounts {
                let a = s.accountHealth(account.id)
                saved.accounts.append(
                    SavedState.Account(
                        name: account.name, exhaustedUntil: a.exhaustedUntil.flatMap { $0 > now ? $0 : nil }, reason: a.reason,
                        minute: a.minute.filter { $0 > horizon }, dayStart: a.dayStart, today: a.today))
            }
            return saved
        }
    }

    /// Puts saved health back after a restart; returns one event per key restored, for the log.
    ///
    /// A key comes back only when both its label and its value match: a replaced key starts healthy.
    /// A state whose time ran out while the gateway was down reads as its trial: one request decides.
    public func restore(_ saved: SavedState, at now: Timestamp) -> [HealthEvent] {
        restoreState { s in
            var events: [HealthEvent] = []
            for record in saved.keys {
                guard let key = table.keys.first(where: { $0.label == record.label }),
                    SavedState.fingerprint(key.secret) == record.fingerprint,
                    let state = KeyState(savedName: record.state, until: record.until)
                else { continue }
                s.keys[key.id] = KeyHealth(
                    settings: table.health, state: state, reason: record.reason, since: now, disableLevel: record.disableLevel,
                    removalLevel: record.removalLevel)
                events.append(
                    HealthEvent(
                        subject: .key(key.id), name: key.label, from: "healthy", to: state.name, reason: "restored: \(record.reason)",
                        until: state.until, at: now))
            }
            for record in saved.accounts {
                guard let account = table.accounts.first(where: { $0.name == record.name }) else { continue }
                s.accounts[account.id].restore(
                    minute: record.minute, dayStart: record.dayStart, today: record.today,
                    exhaustedUntil: record.exhaustedUntil.flatMap { $0 > now ? $0 : nil }, reason: record.reason)
                if let until = s.accounts[account.id].exhaustedUntil {
                    events.append(
                        HealthEvent(
                            subject: .account(account.id), name: account.name, from: "healthy", to: "exhausted",
                            reason: "restored: \(record.reason)", until: until, at: now))
                }
            }
            for record in saved.keyQuotas {
                guard let key = table.keys.first(where: { $0.label == record.name }), s.keyHasQuota[key.id] else { continue }
                s.keyQuotas[key.id].restore(minute: record.minute, dayStart: record.dayStart, today: record.today, exhaustedUntil: nil, reason: "")
            }
            return events
        }
    }
}
