import Testing

@testable import SwitchyardCore

/// The 50% rule over every replica: other replicas' outcomes count with this one's window.
struct SharedOutcomesTests {
    let now = Fixtures.start
    var settings: HealthSettings {
        var s = HealthSettings()
        s.consecutiveFailuresToCool = 0
        return s
    }

    /// A key that saw `ok` successes and `failed` failures here.
    func key(ok: Int, failed: Int) -> KeyHealth {
        var key = KeyHealth(settings: settings, now: now)
        for i in 0..<(ok + failed) { _ = key.record(i < failed ? .failure : .success, at: now + .milliseconds(i)) }
        return key
    }

    @Test func tooFewHereButEnoughEverywhereDisables() {
        var key = key(ok: 2, failed: 4)
        #expect(key.state == .healthy, "6 outcomes here: under min_requests")
        let soon = now + .milliseconds(500)
        let t = key.takeRemote([OutcomeBucket(at: soon, ok: 3, failed: 5), OutcomeBucket(at: soon, ok: 2, failed: 3)], at: now + .seconds(1))
        #expect(t?.to == .disabled(until: now + .seconds(1) + .seconds(300)))
        #expect(t?.reason == "error rate 63% over the last 19 requests on every replica (13 elsewhere)")
    }

    @Test func aHealthyCombinedRateOrTooFewOutcomesChangeNothing() {
        let soon = now + .milliseconds(500)
        var key = key(ok: 2, failed: 4)
        #expect(key.takeRemote([OutcomeBucket(at: soon, ok: 8, failed: 2)], at: now + .seconds(1)) == nil, "6 failed of 16")
        var few = self.key(ok: 1, failed: 3)
        #expect(few.takeRemote([OutcomeBucket(at: soon, ok: 0, failed: 3)], at: now + .seconds(1)) == nil, "7 in all, under min_requests")
    }

    @Test func evidenceOlderThanTheWindowOrTheLastChangeIsNotWeighed() {
        var key = key(ok: 2, failed: 4)
        let old = OutcomeBucket(at: now + .milliseconds(500), ok: 0, failed: 20)
        #expect(key.takeRemote([old], at: now + .seconds(61)) == nil, "outside the 60 s window")
        // Set aside and back: what other replicas saw before its trial passed does not disable it again.
        var recovered = KeyHealth(settings: settings, state: .probing, reason: "", since: now)
        _ = recovered.beginAttempt(at: now + .seconds(1))
        _ = recovered.record(.success, at: now + .seconds(2))
        #expect(recovered.state == .healthy)
        #expect(recovered.takeRemote([OutcomeBucket(at: now + .seconds(1), ok: 0, failed: 20)], at: now + .seconds(3)) == nil)
    }

    @Test func outcomesAreHandedOverOnceAndReturnedWhenTheStoreDidNotTakeThem() throws {
        let table = try Fixtures.table()
        let book = HealthBook(table: table, now: now)
        _ = book.record(model: 0, key: 0, outcome: .success, at: now)
        _ = book.record(model: 0, key: 0, outcome: Outcome(.transient, status: 500), at: now)
        let taken = book.takeUnsharedOutcomes()
        #expect(taken.map(\.label) == ["openrouter#1"] && taken.first?.ok == 1 && taken.first?.failed == 1)
        #expect(book.takeUnsharedOutcomes().isEmpty)
        book.returnUnsharedOutcomes(taken)
        #expect(book.takeUnsharedOutcomes().first?.failed == 1)
    }
}
