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
        for kind in [OutcomeClass.keyInvalid, .keyExhausted, .keyRateLimited, .accountExhausted] {
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
        #expect(step(.transient, failures: 1) == .nextKey(after: .zero))
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
