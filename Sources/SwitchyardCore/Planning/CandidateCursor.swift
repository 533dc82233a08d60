/// The order in which a plan's (model, key) pairs are tried, moved by retry steps.
public struct CandidateCursor: Sendable {
    public let plan: RoutePlan
    /// Further attempts a model gets after a transient fault before the next model (`retry.same_model_retries`).
    let sameModelRetries: Int
    private var modelIndex = 0
    private var keyIndex = -1
    private var retriesOfModel = 0

    public init(plan: RoutePlan, sameModelRetries: Int = 1) {
        self.plan = plan
        self.sameModelRetries = sameModelRetries
    }

    public enum Move: Sendable, Equatable {
        /// The current model's next key, then the next model.
        case nextKey
        /// Once more on the same model after a transient fault (up to `same_model_retries` times): its next key,
        /// or its only key again; then the next model.
        case sameModel
        case nextModel
    }

    /// The next pair, or nil when the plan is spent. `accept` skips models (e.g. ones that cannot continue).
    public mutating func advance(_ move: Move, accept: (ModelID) -> Bool = { _ in true }) -> (model: ModelID, key: KeyID)? {
        if move == .sameModel, keyIndex >= 0, modelIndex < plan.candidates.count {
            let candidate = plan.candidates[modelIndex]
            guard retriesOfModel < sameModelRetries, accept(candidate.model) else {
                moveToNextModel()
                return advance(.nextKey, accept: accept)
            }
            retriesOfModel += 1
            if keyIndex + 1 < candidate.keys.count { keyIndex += 1 }
            return (candidate.model, candidate.keys[keyIndex])
        }
        if move == .nextModel, keyIndex >= 0 {
            moveToNextModel()
        }
        while modelIndex < plan.candidates.count {
            let candidate = plan.candidates[modelIndex]
            if accept(candidate.model) {
                keyIndex += 1
                if keyIndex < candidate.keys.count { return (candidate.model, candidate.keys[keyIndex]) }
            }
            moveToNextModel()
        }
        return nil
    }

    private mutating func moveToNextModel() {
        modelIndex += 1
        keyIndex = -1
        retriesOfModel = 0
    }
}
