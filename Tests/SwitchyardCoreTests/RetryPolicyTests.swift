import Testing
@testable import SwitchyardCore

struct RetryPolicyTests {
    let policy = RetryPolicy(settings: RetrySettings())
    let now = Fixtures.start
    var deadline: Timestamp { now + .seconds(60) }

    func step(_ kind: OutcomeClass, retry: RetryHint? = nil, attempts: Int = 1, failures: Int = 1, deadline: Timestamp? = nil) -> RetryStep {
        var random = SeededGenerator(state: 7)
        return policy.next(
            after: Outcome(kind, retry: retry), attempts: attempts, upstreamFailures: failures, now: now,
            deadline: deadline ?? self.deadline, random: &random)
    }

    @Test func keyFaultsSwitchKeyAtOnce() {
        for kind in [OutcomeClass.keyInvalid, .keyExhausted, .rateLimited, .accountExhausted] {
            #expect(step(kind) == .nextKey(after: .zero))
        }
    }

    @Test func modelFaultsMoveToTheNextModel() {
        for kind in [OutcomeClass.contextTooLong, .requestTooLargeForModel, .modelGone, .silent] {
            #expect(step(kind) == .nextModel(after: .zero))
        }
    }

    @Test func clientFaultsAreNeverRetried() {
        #expect(step(.requestInvalid) == .giveUp(.clientFault))
        #expect(step(.contentRefused) == .giveUp(.clientFault))
        #expect(step(.cancelled) == .giveUp(.cancelled))
    }

    @Test func firstFailoverIsImmediateLaterOnesJitterWithinBounds() {
        #expect(step(.transient, failures: 1) == .sameModel(after: .zero))
        var random = SeededGenerator(state: 1)
        var seen: Set<Int64> = []
        for _ in 0..<200 {
            let second = policy.backoff(failure: 2, random: &random)
            let third = policy.backoff(failure: 3, random: &random)
            let tenth = policy.backoff(failure: 10, random: &random)
            #expect(second >= .zero && second <= .seconds(2))
            #expect(third >= .zero && third <= .seconds(4))
            #expect(tenth <= .seconds(8))
            seen.insert(second.nanoseconds)
        }
        #expect(seen.count > 100, "full jitter spreads the delays")
    }

    @Test func anUpstreamPauseMovesToAnotherModel() {
        guard case .nextModel = step(.transient, retry: .after(.seconds(30)), failures: 1) else {
            Issue.record("expected nextModel")
            return
        }
    }

    @Test func attemptsAndDeadlineStopEverything() {
        #expect(step(.keyInvalid, attempts: 4) == .giveUp(.attemptsExhausted))
        #expect(step(.transient, attempts: 2, failures: 3, deadline: now + .milliseconds(1)) != .nextKey(after: .zero))
        #expect(step(.keyInvalid, deadline: now) == .giveUp(.deadline))
    }
}

/// Same-model retries and the cursor that carries them out.
struct SameModelRetryTests {
    func plan(_ models: [(ModelID, [KeyID])]) -> RoutePlan {
        RoutePlan(route: "r", neededTokens: 10, candidates: models.map { PlannedModel(model: $0.0, keys: $0.1, usableContext: 1000) }, skipped: [])
    }

    @Test func aTransientFaultRetriesTheSameModelAndABusyModelMovesOn() {
        let policy = RetryPolicy(settings: RetrySettings())
        var random = SeededGenerator(state: 3)
        let now = Fixtures.start
        #expect(policy.next(after: Outcome(.transient, status: 500), attempts: 1, upstreamFailures: 1, now: now, deadline: now + .seconds(60), random: &random) == .sameModel(after: .zero))
        let busy = Outcome(.rateLimited, status: 429, scope: .model)
        #expect(policy.next(after: busy, attempts: 1, upstreamFailures: 0, now: now, deadline: now + .seconds(60), random: &random) == .nextModel(after: .zero))
    }

    @Test func aModelsOnlyKeyIsRetriedOnceThenTheNextModel() {
        var cursor = CandidateCursor(plan: plan([(0, [7]), (1, [7])]), sameModelRetries: 1)
        #expect(cursor.advance(.nextKey)! == (0, 7))
        #expect(cursor.advance(.sameModel)! == (0, 7))
        #expect(cursor.advance(.sameModel)! == (1, 7), "one same-key retry, then the next model")
        #expect(cursor.advance(.sameModel)! == (1, 7))
        #expect(cursor.advance(.sameModel) == nil)
    }

    @Test func anotherKeyComesBeforeTheSameKeyAndOnceMoreMeansOnce() {
        var cursor = CandidateCursor(plan: plan([(0, [1, 2, 3]), (1, [1])]), sameModelRetries: 1)
        #expect(cursor.advance(.nextKey)! == (0, 1))
        #expect(cursor.advance(.sameModel)! == (0, 2))
        #expect(cursor.advance(.sameModel)! == (1, 1), "once more on the same model, then the next model")
        // A key fault still walks every key of a model.
        var keys = CandidateCursor(plan: plan([(0, [1, 2, 3]), (1, [1])]), sameModelRetries: 1)
        #expect(keys.advance(.nextKey)! == (0, 1))
        #expect(keys.advance(.nextKey)! == (0, 2))
        #expect(keys.advance(.nextKey)! == (0, 3))
        #expect(keys.advance(.nextKey)! == (1, 1))
    }

    @Test func noRetriesWhenTurnedOff() {
        var cursor = CandidateCursor(plan: plan([(0, [7]), (1, [7])]), sameModelRetries: 0)
        _ = cursor.advance(.nextKey)
        #expect(cursor.advance(.sameModel)! == (1, 7))
    }
}
