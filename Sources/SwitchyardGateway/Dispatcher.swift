import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Runs requests through the plan: send, classify, record, next candidate, under the retry policy.
public final class Dispatcher: Sendable {
    let upstream: UpstreamClient
    let clock: any WallClock
    let logger: Logger
    let activity: GatewayActivity
    let metrics: GatewayMetrics?
    let usage: UsageLedger?
    /// Reserves configured quotas across replicas before a send; nil without a shared store.
    let quotas: SharedQuotaGate?

    init(
        upstream: UpstreamClient, clock: any WallClock, logger: Logger, activity: GatewayActivity = GatewayActivity(),
        metrics: GatewayMetrics? = nil, usage: UsageLedger? = nil, quotas: SharedQuotaGate? = nil
    ) {
        self.usage = usage
        self.quotas = quotas
        self.upstream = upstream
        self.clock = clock
        self.logger = logger
        self.activity = activity
        self.metrics = metrics
    }

    func countAttempt(_ request: ChatRequest, model: ModelID, key: KeyID, outcome: OutcomeClass, since started: UInt64) {
        let table = request.snapshot.table
        let elapsed = Monotonic.now() &- started
        if outcome == .success { activity.attempt(key: table.keys[key].label, model: table.models[model].name, nanoseconds: elapsed) }
        metrics?.attempt(model: table.models[model].name, key: table.keys[key].label, outcome: outcome, nanoseconds: elapsed)
        usage?.attempt(
            key: table.keys[key].label, model: table.models[model].name, failed: outcome != .success && outcome != .cancelled, at: clock.now())
    }

    /// Adds an answer's reported tokens to the day's usage.
    func countTokens(_ request: ChatRequest, model: ModelID, key: KeyID, _ tokens: (prompt: Int, completion: Int)) {
        let table = request.snapshot.table
        usage?.tokens(key: table.keys[key].label, model: table.models[model].name, prompt: tokens.prompt, completion: tokens.completion, at: clock.now())
    }

    /// The state of one request's walk through its candidates.
    struct Walk {
        var cursor: CandidateCursor
        var notes: [AttemptNote] = []
        var attempts = 0
        var upstreamFailures = 0
        var nextMove = CandidateCursor.Move.nextKey
        var gaveUp: GiveUpReason?
        var lastClientFault: Outcome?
        /// Whether the request already waited once for a rate limit to lift.
        var waited = false
        var random = SystemRandomNumberGenerator()

        init(plan: RoutePlan, sameModelRetries: Int) {
            cursor = CandidateCursor(plan: plan, sameModelRetries: sameModelRetries)
        }
    }

    /// The next pair to try; when the plan is spent only because of holds that lift within `retry.max_wait`
    /// (and the deadline), waits once for the earliest and plans again.
    func nextCandidate(_ walk: inout Walk, _ request: ChatRequest, accept: (ModelID) -> Bool = { _ in true }) async -> (ModelID, KeyID)? {
        if let pair = await nextPair(&walk, request, accept: accept) { return pair }
        guard await waitForRecovery(&walk, request) else { return nil }
        return await nextPair(&walk, request, accept: accept)
    }

    /// Waits once for the earliest recovery among the plan's models, if it comes soon enough; false otherwise.
    func waitForRecovery(_ walk: inout Walk, _ request: ChatRequest) async -> Bool {
        guard !walk.waited, walk.gaveUp == nil else { return false }
        let snapshot = request.snapshot
        let now = clock.now()
        guard let back = snapshot.health.earliestUsable(models: walk.cursor.plan.modelsThatMayServe, at: now), back > now else { return false }
        let wait = back - now
        guard wait <= snapshot.table.retry.maxWait, wait < remaining(request) else { return false }
        walk.waited = true
        do {
            let clock = self.clock
            try await untilClientLeaves(request) { try await clock.sleep(for: wait) }
        } catch {
            walk.gaveUp = .cancelled
            return false
        }
        let summary = request.summary
        let again = snapshot.plan(
            request.route, PlanRequest(estimatedPromptTokens: summary.estimatedPromptTokens, maxTokens: summary.maxTokens, affinity: request.affinity),
            at: clock.now())
        walk.cursor = CandidateCursor(plan: again, sameModelRetries: snapshot.table.retry.sameModelRetries)
        walk.nextMove = .nextKey
        return true
    }


    /// Picks the next usable pair, claiming it in the health book (and its quotas across replicas); nil when
    /// nothing is left.
    func nextPair(_ walk: inout Walk, _ request: ChatRequest, accept: (ModelID) -> Bool = { _ in true }) async -> (ModelID, KeyID)? {
        guard let quotas else { return nextPairNow(&walk, request, accept: accept) }
        return await nextPair(&walk, request, quotas: quotas, accept: accept)
    }

    /// `nextPair` without a shared store: no reservation to wait for.
    func nextPairNow(_ walk: inout Walk, _ request: ChatRequest, accept: (ModelID) -> Bool = { _ in true }) -> (ModelID, KeyID)? {
        let health = request.snapshot.health
        while let (model, key) = walk.cursor.advance(walk.nextMove, accept: accept) {
            walk.nextMove = .nextKey
            let (allowed, events) = health.beginAttempt(key: key, model: model, at: clock.now(), reserved: false)
            log(events, request.snapshot)
            if allowed { return (model, key) }
        }
        return nil
    }

    private func nextPair(
        _ walk: inout Walk, _ request: ChatRequest, quotas: SharedQuotaGate, accept: (ModelID) -> Bool
    ) async -> (ModelID, KeyID)? {
        let health = request.snapshot.health
        while let (model, key) = walk.cursor.advance(walk.nextMove, accept: accept) {
            walk.nextMove = .nextKey
            var reserved = false
            if health.canBegin(key: key, model: model, at: clock.now()) {
                let admission = await quotas.admit(key: key, health: health)
                log(admission.events, request.snapshot)
                guard admission.allowed else { continue }
                reserved = admission.reserved
            }
            let (allowed, events) = health.beginAttempt(key: key, model: model, at: clock.now(), reserved: reserved)
            log(events, request.snapshot)
            if allowed { return (model, key) }
        }
        return nil
    }

    /// Records an attempt's outcome and decides the next move; false when the walk must stop.
    func afterFailure(_ walk: inout Walk, _ request: ChatRequest, model: ModelID, key: KeyID, outcome: Outcome) async -> Bool {
        let snapshot = request.snapshot
        let now = clock.now()
        log(snapshot.health.record(model: model, key: key, outcome: outcome, at: now), snapshot)
        walk.notes.append(AttemptNote(key: snapshot.table.keys[key].label, model: snapshot.table.models[model].name, outcome: outcome))
        if outcome.kind == .transient || outcome.kind == .silent { walk.upstreamFailures += 1 }
        let step = snapshot.retry.next(
            after: outcome, attempts: walk.attempts, upstreamFailures: walk.upstreamFailures, now: now, deadline: request.deadline,
            random: &walk.random)
        switch step {
        case .giveUp(let reason):
            walk.gaveUp = reason
            if reason == .clientFault { walk.lastClientFault = outcome }
            return false
        case .nextKey(let delay), .sameModel(let delay), .nextModel(let delay):
            switch step {
            case .nextModel: walk.nextMove = .nextModel
            case .sameModel: walk.nextMove = .sameModel
            default: break
            }
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch {
                    walk.gaveUp = .cancelled
                    return false
                }
            }
            return true
        }
    }

    func remaining(_ request: ChatRequest) -> Duration {
        let now = Monotonic.now()
        return now >= request.deadlineMono ? .zero : .nanoseconds(Int64(request.deadlineMono - now))
    }

    func log(_ events: [HealthEvent], _ snapshot: RoutingSnapshot) {
        activity.report(events, logger: logger)
    }

    /// Learns what an answer's rate-limit headers say about the key's account. A 429's headers are left to the
    /// classifier, which holds exactly the scope the 429 names (OpenRouter's free-model limit, say, is not every
    /// model of the account).
    func learnQuota(_ headers: HTTPHeaders, status: Int, key: KeyID, _ snapshot: RoutingSnapshot) {
        guard status != 429 else { return }
        let now = clock.now()
        guard let reading = QuotaReading.read(headers, now: now) else { return }
        log(snapshot.health.learn(key: key, reading, at: now), snapshot)
    }

    // MARK: non-streaming

    /// A complete upstream answer.
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
        var model: ModelID
        var key: KeyID
        var attempts: Int
    }

    enum Completion: Sendable {
        case answered(Answer)
        case failed(GatewayError, attempts: Int)
    }

    func complete(_ request: ChatRequest, plan: RoutePlan) async -> Completion {
        await complete(request, walk: Walk(plan: plan, sameModelRetries: request.snapshot.table.retry.sameModelRetries))
    }

    /// An attempt that failed, whose outcome decides the walk's next move.
    struct FailedAttempt: Sendable {
        var model: ModelID
        var key: KeyID
        var outcome: Outcome
    }

    /// Walks on from `walk` until a candidate answers; `after` is an attempt already made (by the channel
    /// handler on its event loop) whose failure moves the walk first.
    func complete(_ request: ChatRequest, walk start: Walk, after failed: FailedAttempt? = nil) async -> Completion {
        let ended = await walkOn(request, from: start, after: failed) { walk, model, key -> Step<Answer> in
            let budget = min(request.snapshot.table.retry.attemptTimeout, remaining(request))
            guard budget > .zero else {
                walk.gaveUp = .deadline
                return .gaveUp
            }
            switch await attempt(request, model: model, key: key, number: walk.attempts, budget: budget) {
            case .answered(let answer): return .done(answer)
            case .failed(let outcome): return .failed(outcome)
            }
        }
        if let answer = ended.result { return .answered(answer) }
        return .failed(failure(ended.walk, request), attempts: ended.walk.attempts)
    }

    /// What one attempt of a walk came to.
    enum Step<Result> {
        /// The walk ends with this.
        case done(Result)
        /// The attempt failed: the client's leaving or the retry policy decides whether the walk goes on.
        case failed(Outcome)
        /// The walk ends without another attempt (`walk.gaveUp` says why).
        case gaveUp
    }

    /// Walks on from `start` over the plan's candidates, each tried by `attempt` (given the walk, which it may end,
    /// with its attempt already counted) until one gives a result; none when the walk ends first. `after` is an
    /// attempt already made whose failure moves the walk first. A whole answer and a stream's start differ only in
    /// what an attempt is.
    func walkOn<Result>(
        _ request: ChatRequest, from start: Walk, after failed: FailedAttempt?, _ attempt: (inout Walk, ModelID, KeyID) async -> Step<Result>
    ) async -> (result: Result?, walk: Walk) {
        var walk = start
        if let failed, await !proceed(&walk, request, after: failed) { return (nil, walk) }
        while let (model, key) = await nextCandidate(&walk, request) {
            walk.attempts += 1
            let outcome: Outcome
            switch await attempt(&walk, model, key) {
            case .done(let result): return (result, walk)
            case .failed(let failed): outcome = failed
            case .gaveUp: return (nil, walk)
            }
            // The client has gone (answered 499 by `failure`), or the retry policy decides.
            if await !proceed(&walk, request, after: FailedAttempt(model: model, key: key, outcome: outcome)) { break }
        }
        return (nil, walk)
    }

    /// What one attempt came to.
    enum AttemptResult {
        case answered(Answer)
        case failed(Outcome)
    }

    /// Sends one non-streaming attempt and reads its whole answer.
    private func attempt(_ request: ChatRequest, model: ModelID, key: KeyID, number: Int, budget: Duration) async -> AttemptResult {
        let snapshot = request.snapshot
        let attemptStarted = Monotonic.now()
        let provider = snapshot.table.providers[snapshot.table.models[model].provider]
        let body = UpstreamBody.build(
            original: request.body, summary: request.summary, upstreamModel: snapshot.upstreamModelJSON[model], defaults: request.route.defaults)
        let (upstream, target, loop) = (self.upstream, snapshot.upstreamTarget(provider.id, request.endpoint), request.channel?.eventLoop)
        do {
            let (response, bytes) = try await untilClientLeaves(request) {
                let response = try await upstream.send(
                    provider: provider, target: target, key: snapshot.table.keys[key], body: body, stream: false, attempt: number, timeout: budget,
                    on: loop)
                return (response, try await response.body.collect(upTo: Self.maxAnswerBytes))
            }
            return conclude(
                request, model: model, key: key, attempts: number, status: Int(response.status.code), headers: response.headers, body: bytes,
                since: attemptStarted)
        } catch {
            return .failed(conclude(request, model: model, key: key, error: error, cancelled: Task.isCancelled, since: attemptStarted))
        }
    }

    /// The largest answer body read from an upstream.
    static let maxAnswerBytes = 32 << 20

    /// Classifies a whole upstream answer and counts it; a success is recorded as such. Pure of I/O, so the
    /// channel handler's first attempt and the walk's later ones conclude alike.
    func conclude(
        _ request: ChatRequest, model: ModelID, key: KeyID, attempts: Int, status: Int, headers: HTTPHeaders, body: ByteBuffer, since started: UInt64
    ) -> AttemptResult {
        let snapshot = request.snapshot
        let provider = snapshot.table.models[model].provider
        learnQuota(headers, status: status, key: key, snapshot)
        let classifier = snapshot.classifiers[provider]
        let classified = body.withUnsafeReadableBytes { bytes in
            classifier.classify(
                status: status, headers: (200..<300).contains(status) ? [] : headers.map { ($0.name, $0.value) }, body: bytes, now: clock.now(),
                secrets: snapshot.secrets)
        }
        countAttempt(request, model: model, key: key, outcome: classified.kind, since: started)
        guard classified.kind == .success else { return .failed(classified) }
        countTokens(request, model: model, key: key, body.withUnsafeReadableBytes { UsageTokens.scan($0) })
        log(snapshot.health.record(model: model, key: key, outcome: classified, at: clock.now()), snapshot)
        return .answered(Answer(status: status, body: body, model: model, key: key, attempts: attempts))
    }

    /// An attempt that ended in an error rather than an answer, classified and counted.
    func conclude(_ request: ChatRequest, model: ModelID, key: KeyID, error: any Error, cancelled: Bool, since started: UInt64) -> Outcome {
        let outcome = Self.networkOutcome(error, cancelled: cancelled)
        countAttempt(request, model: model, key: key, outcome: outcome.kind, since: started)
        return outcome
    }

    /// After a failed attempt: a client that left stops the walk; otherwise the retry policy moves it (false: stop).
    func proceed(_ walk: inout Walk, _ request: ChatRequest, after failed: FailedAttempt) async -> Bool {
        if failed.outcome.kind == .cancelled {
            log(request.snapshot.health.record(model: failed.model, key: failed.key, outcome: failed.outcome, at: clock.now()), request.snapshot)
            walk.gaveUp = .cancelled
            return false
        }
        return await afterFailure(&walk, request, model: failed.model, key: failed.key, outcome: failed.outcome)
    }

    /// Runs an attempt's upstream I/O, cancelled when the client leaves if nothing else would cancel it.
    func untilClientLeaves<T: Sendable>(_ request: ChatRequest, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        guard request.watchesClient, let channel = request.channel else { return try await work() }
        return try await ClientWatch.run(while: channel, work)
    }

    /// A thrown error from an attempt, classified: network faults and timeouts are transient.
    static func networkOutcome(_ error: any Error, cancelled: Bool) -> Outcome {
        if cancelled || error is CancellationError { return Outcome(.cancelled, message: "the client went away or the deadline passed") }
        if let e = error as? UpstreamError {
            if e == .cancelled { return Outcome(.cancelled, message: "the client went away or the deadline passed") }
            return Outcome(.transient, message: e.isTimeout ? "timed out (\(e))" : "network error (\(e))")
        }
        return Outcome(.transient, message: "network error (\(error))")
    }
}
