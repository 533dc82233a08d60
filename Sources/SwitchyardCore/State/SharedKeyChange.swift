/// A key's state change heard from another replica: what it is, and whether an operator made it.
public struct SharedKeyChange: Sendable, Equatable {
    public var label: String
    /// Ties the change to the key value it was about (`SavedState.fingerprint`).
    public var fingerprint: String
    /// `healthy` or a saved state name (`disabled`, `removed`, `cooling`, `rate_limited`, `manually_disabled`).
    public var state: String
    public var until: Timestamp?
    public var reason: String
    public var byOperator: Bool

    public init(label: String, fingerprint: String, state: String, until: Timestamp?, reason: String, byOperator: Bool) {
        self.label = label
        self.fingerprint = fingerprint
        self.state = state
        self.until = until
        self.reason = reason
        self.byOperator = byOperator
    }
}

extension HealthBook {
    /// Applies a key state change another replica made, when it is at least as restrictive as what this replica
    /// holds: an operator's action always; a set-aside state when the key is usable here or set aside for less
    /// long. A key's own recovery (its trial) stays each replica's to see, so a remote `healthy` that no operator
    /// made changes nothing.
    public func applyShared(_ change: SharedKeyChange, at now: Timestamp) -> [HealthEvent] {
        restoreState { s in
            guard let key = table.keys.first(where: { $0.label == change.label }),
                SavedState.fingerprint(key.secret) == change.fingerprint
            else { return [] }
            let local = s.keys[key.id]
            let current = local.effectiveState(at: now)
            if change.state == "healthy" {
                guard change.byOperator, current != .healthy, let t = s.keys[key.id].reset(at: now, reason: change.reason) else { return [] }
                return [s.event(key: key.id, t, at: now)]
            }
            guard let remote = KeyState(savedName: change.state, until: change.until) else { return [] }
            if !change.byOperator {
                if current == .manuallyDisabled { return [] }
                if let localUntil = current.until, let remoteUntil = remote.until, localUntil >= remoteUntil { return [] }
            }
            guard current != remote else { return [] }
            s.keys[key.id] = KeyHealth(
                settings: table.health, state: remote, reason: change.reason, since: now, disableLevel: local.disableLevel,
                removalLevel: local.removalLevel)
            return [
                HealthEvent(
                    subject: .key(key.id), name: key.label, from: current.name, to: remote.name, reason: change.reason, until: remote.until, at: now)
            ]
        }
    }

    /// The change to tell other replicas about after `event`, if it is a key's.
    public func sharedChange(for event: HealthEvent) -> SharedKeyChange? {
        guard case .key(let id) = event.subject else { return nil }
        let key = table.keys[id]
        return SharedKeyChange(
            label: key.label, fingerprint: SavedState.fingerprint(key.secret), state: event.to, until: event.until, reason: event.reason,
            byOperator: event.reason.hasSuffix("by an operator"))
    }
}
