/// Outcomes of one key counted by other replicas in one slice of time: the shared evidence behind the 50% rule.
public struct OutcomeBucket: Sendable, Equatable {
    public var at: Timestamp
    public var ok: Int
    public var failed: Int

    public init(at: Timestamp, ok: Int, failed: Int) {
        self.at = at
        self.ok = ok
        self.failed = failed
    }
}

extension HealthBook {
    /// Every key's outcomes recorded since the last call, by label, for the shared store; keys with none are left out.
    public func takeUnsharedOutcomes() -> [(label: String, ok: Int, failed: Int)] {
        restoreState { s in
            s.keys.indices.compactMap { k in
                let outcomes = s.keys[k].takeUnshared()
                return outcomes.ok + outcomes.failed == 0 ? nil : (s.keyLabels[k], outcomes.ok, outcomes.failed)
            }
        }
    }

    /// Puts back outcomes the store did not take, for the next write.
    public func returnUnsharedOutcomes(_ outcomes: [(label: String, ok: Int, failed: Int)]) {
        restoreState { s in
            for o in outcomes {
                guard let k = s.keyLabels.firstIndex(of: o.label) else { continue }
                s.keys[k].returnUnshared((o.ok, o.failed))
            }
        }
    }

    /// Takes in every other replica's recent outcomes by key label: a key whose error rate over every replica
    /// together is above the threshold is disabled here, though this replica alone saw too few requests.
    public func takeRemoteOutcomes(_ byLabel: [String: [OutcomeBucket]], at now: Timestamp) -> [HealthEvent] {
        restoreState { s in
            s.keys.indices.compactMap { k in
                s.keys[k].takeRemote(byLabel[s.keyLabels[k]] ?? [], at: now).map { s.event(key: k, $0, at: now) }
            }
        }
    }
}
