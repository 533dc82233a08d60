/// What to do after a failed attempt.
public enum RetryStep: Sendable, Equatable {
    /// Another key of the same model (a key fault: at once).
    case nextKey(after: Duration)
    /// The same model once more (a transient fault): another key first, the same key when it is the model's only
    /// one (up to `same_model_retries`), then the next model.
    case sameModel(after: Duration)
    /// The next model (this one cannot serve the request, or is failing everywhere).
    case nextModel(after: Duration)
    case giveUp(GiveUpReason)
}

public enum GiveUpReason: String, Sendable, Equatable {
    /// The request itself is at fault (invalid, refused): the client hears the upstream's answer.
    case clientFault = "client_fault"
    case attemptsExhausted = "attempts_exhausted"
    case deadline
    case cancelled
}

/// Decides the next step after a failure: key faults switch key at once, upstream-wide faults back off
/// with full jitter, client faults are never retried, and nothing outlives the request's deadline.
public struct RetryPolicy: Sendable {
    public var settings: RetrySettings

    public init(settings: RetrySettings) {
        self.settings = settings
    }

    /// - Parameters:
    ///   - attempts: attempts made so far, including the one that just failed.
    ///   - upstreamFailures: transient failures so far, including this one if it is one.
    public func next<R: RandomNumberGenerator>(
        after outcome: Outcome, attempts: Int, upstreamFailures: Int, now: Timestamp, deadline: Timestamp,
        random: inout R
    ) -> RetryStep {
        let step: RetryStep
        switch outcome.kind {
        case .success:
            return .giveUp(.clientFault)
        case .requestInvalid, .contentRefused:
            return .giveUp(.clientFault)
        case .cancelled:
            return .giveUp(.cancelled)
        case .rateLimited where outcome.scope == .model:
            // Every key of the model is held back: only another model can serve.
            step = .nextModel(after: .zero)
        case .keyInvalid, .keyExhausted, .rateLimited, .accountExhausted:
            step = .nextKey(after: .zero)
        case .contextTooLong, .requestTooLargeForModel, .modelGone, .silent:
            step = .nextModel(after: .zero)
        case .transient:
            let delay = backoff(failure: upstreamFailures, random: &random)
            // An upstream that asked for a pause has paused the model; move on rather than wait.
            step = outcome.retry == nil ? .sameModel(after: delay) : .nextModel(after: delay)
        }
        if attempts >= settings.maxAttempts { return .giveUp(.attemptsExhausted) }
        switch step {
        case .nextKey(let d), .sameModel(let d), .nextModel(let d):
            if now + d >= deadline { return .giveUp(.deadline) }
        case .giveUp:
            break
        }
        return step
    }

    /// Delay before the retry that follows the `failure`-th upstream-wide failure (1-based).
    /// The first entry of `backoff` (normally 0s) is used as is; later ones are full-jitter upper bounds,
    /// doubling past the end of the list, capped at `backoff_cap`.
    public func backoff<R: RandomNumberGenerator>(failure: Int, random: inout R) -> Duration {
        let index = max(failure - 1, 0)
        if index == 0 { return min(settings.backoff.first ?? .zero, settings.backoffCap) }
        let last = settings.backoff.count - 1
        var bound = settings.backoff[min(index, last)]
        if index > last {
            bound = KeyHealth.scaled(settings.backoff[last], level: index - last, cap: settings.backoffCap)
        }
        bound = min(bound, settings.backoffCap)
        guard bound > .zero else { return .zero }
        return .nanoseconds(Int64.random(in: 0...bound.nanoseconds, using: &random))
    }
}
