import Testing
@testable import SwitchyardCore

struct KeyHealthTests {
    var settings: HealthSettings = {
        var s = HealthSettings()
        s.consecutiveFailuresToCool = 0
        return s
    }()

    func record(_ health: inout KeyHealth, successes: Int, failures: Int, at now: Timestamp) -> [KeyTransition] {
        var transitions: [KeyTransition] = []
        for _ in 0..<successes { if let t = health.record(.success, at: now) { transitions.append(t) } }
        for _ in 0..<failures { if let t = health.record(.failure, at: now) { transitions.append(t) } }
        return transitions
    }

    @Test func exactlyHalfDoesNotDisable() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = record(&h, successes: 5, failures: 5, at: Fixtures.start)
        #expect(h.state == .healthy)
    }

    @Test func aboveHalfOverMinRequestsDisablesForFiveMinutes() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        let transitions = record(&h, successes: 4, failures: 6, at: Fixtures.start)
        #expect(h.state == .disabled(until: Fixtures.start + .seconds(300)))
        #expect(transitions.count == 1)
        #expect(transitions[0].reason.contains("error rate 60%"))
        #expect(!h.isUsable(at: Fixtures.start + .seconds(299)))
    }

    @Test func fewerThanMinRequestsDoesNotDisable() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = record(&h, successes: 0, failures: 9, at: Fixtures.start)
        #expect(h.state == .healthy)
        _ = h.record(.failure, at: Fixtures.start)
        #expect(h.state.name == "disabled")
    }

    @Test func oldOutcomesLeaveTheWindow() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = record(&h, successes: 0, failures: 9, at: Fixtures.start)
        _ = record(&h, successes: 1, failures: 0, at: Fixtures.start + .seconds(61))
        #expect(h.window.count == 1)
        #expect(h.state == .healthy)
    }

    @Test func probeAfterDisableSucceedsAndRestores() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = record(&h, successes: 0, failures: 10, at: Fixtures.start)
        let later = Fixtures.start + .seconds(300)
        #expect(h.effectiveState(at: later) == .probing)
        let first = h.beginAttempt(at: later)
        #expect(first.allowed)
        #expect(first.transition?.to == .probing)
        // One trial at a time.
        #expect(!h.beginAttempt(at: later).allowed)
        let t = h.record(.success, at: later + .seconds(1))
        #expect(t?.to == .healthy)
        #expect(h.isUsable(at: later + .seconds(1)))
        #expect(h.window.count == 0)
    }

    @Test func failedProbeDisablesForDoubleThenCapped() {
        var s = settings
        s.maxDisableFor = .seconds(1200)
        var h = KeyHealth(settings: s, now: Fixtures.start)
        _ = record(&h, successes: 0, failures: 10, at: Fixtures.start)
        var now = Fixtures.start
        var periods: [Duration] = []
        for _ in 0..<4 {
            guard let until = h.state.until else { break }
            periods.append(until - now)
            now = until
            #expect(h.beginAttempt(at: now).allowed)
            _ = h.record(.failure, at: now)
        }
        #expect(periods == [.seconds(300), .seconds(600), .seconds(1200), .seconds(1200)])
    }

    @Test func neutralProbeResultFreesTheSlot() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = record(&h, successes: 0, failures: 10, at: Fixtures.start)
        let later = Fixtures.start + .seconds(300)
        #expect(h.beginAttempt(at: later).allowed)
        _ = h.record(.neutral, at: later)
        #expect(h.beginAttempt(at: later).allowed)
    }

    @Test func consecutiveFailuresCoolThenProbe() {
        var s = settings
        s.consecutiveFailuresToCool = 3
        var h = KeyHealth(settings: s, now: Fixtures.start)
        _ = h.record(.failure, at: Fixtures.start)
        _ = h.record(.success, at: Fixtures.start)
        _ = record(&h, successes: 0, failures: 2, at: Fixtures.start)
        #expect(h.state == .healthy)
        _ = h.record(.failure, at: Fixtures.start)
        #expect(h.state == .cooling(until: Fixtures.start + .seconds(60)))
        #expect(h.effectiveState(at: Fixtures.start + .seconds(60)) == .probing)
    }

    @Test func rateLimitEndsWithoutAProbe() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = h.record(.rateLimited(until: Fixtures.start + .seconds(2)), at: Fixtures.start, detail: "429")
        #expect(!h.isUsable(at: Fixtures.start + .seconds(1)))
        #expect(h.effectiveState(at: Fixtures.start + .seconds(2)) == .healthy)
        // Rate limits do not count as errors.
        #expect(h.window.failures == 0)
    }

    @Test func invalidKeyIsRemovedAndReprobedAtGrowingIntervals() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = h.record(.invalid, at: Fixtures.start, detail: "401")
        #expect(h.state == .removed(until: Fixtures.start + .seconds(600)))
        let first = Fixtures.start + .seconds(600)
        #expect(h.beginAttempt(at: first).allowed)
        _ = h.record(.invalid, at: first)
        #expect(h.state == .removed(until: first + .seconds(1200)))
        let second = first + .seconds(1200)
        #expect(h.beginAttempt(at: second).allowed)
        _ = h.record(.success, at: second)
        #expect(h.state == .healthy)
    }

    @Test func exhaustedKeyWaitsForItsReset() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = h.record(.exhausted(until: Fixtures.start + .seconds(3600)), at: Fixtures.start)
        #expect(!h.isUsable(at: Fixtures.start + .seconds(3599)))
        #expect(h.isUsable(at: Fixtures.start + .seconds(3600)))
    }

    @Test func manualDisableHoldsUntilEnabled() {
        var h = KeyHealth(settings: settings, now: Fixtures.start)
        _ = h.disableManually(at: Fixtures.start)
        _ = h.record(.rateLimited(until: Fixtures.start + .seconds(1)), at: Fixtures.start)
        #expect(h.state == .manuallyDisabled)
        #expect(!h.isUsable(at: Fixtures.start + .seconds(86400)))
        _ = h.reset(at: Fixtures.start)
        #expect(h.isUsable(at: Fixtures.start))
    }
}
