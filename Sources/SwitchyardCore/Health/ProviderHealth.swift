/// Provider-wide signals: many keys rejected at once is an incident, not many dead keys.
public struct ProviderHealth: Sendable {
    private var authFailures: [(key: KeyID, at: Timestamp)] = []
    public private(set) var incidentUntil: Timestamp?
    public private(set) var reason = ""

    public init() {}

    public func isUsable(at now: Timestamp) -> Bool {
        incidentUntil.map { now >= $0 } ?? true
    }

    /// Records a key rejected as invalid. Returns the keys to restore when this makes an incident.
    public mutating func recordAuthFailure(
        key: KeyID, providerKeyCount: Int, settings: HealthSettings, detail: String, at now: Timestamp
    ) -> [KeyID]? {
        let horizon = now - settings.incidentWindow
        authFailures.removeAll { $0.at <= horizon || $0.key == key }
        authFailures.append((key, now))
        let distinct = authFailures.count
        guard distinct >= 2, distinct * 2 > providerKeyCount else { return nil }
        incidentUntil = now + settings.cooldown
        reason = "\(distinct) of \(providerKeyCount) keys rejected within \(settings.incidentWindow.configText)\(detail.isEmpty ? "" : ": \(detail)")"
        let keys = authFailures.map(\.key)
        authFailures.removeAll()
        return keys
    }

    public mutating func reset() {
        authFailures.removeAll()
        incidentUntil = nil
        reason = ""
    }
}
