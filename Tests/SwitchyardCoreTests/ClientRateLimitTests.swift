import Testing
@testable import SwitchyardCore

struct ClientRateLimitTests {
    let now = Fixtures.start

    @Test func aMinutesWorthThenOneEveryShareOfTheMinute() {
        let limit = ClientRateLimit()
        for _ in 0..<3 { #expect(limit.admit(client: "a", perMinute: 3, at: now) == nil) }
        let wait = limit.admit(client: "a", perMinute: 3, at: now)
        #expect(wait == .seconds(20))
        #expect(limit.admit(client: "b", perMinute: 3, at: now) == nil, "clients are counted apart")
        #expect(limit.admit(client: "a", perMinute: 3, at: now + .seconds(19)) != nil)
        #expect(limit.admit(client: "a", perMinute: 3, at: now + .seconds(20)) == nil)
    }

    @Test func quietClientsAreForgottenSoTheTableStaysSmall() {
        let limit = ClientRateLimit()
        for i in 0..<ClientRateLimit.sweepAbove { _ = limit.admit(client: "c\(i)", perMinute: 60, at: now) }
        #expect(limit.clients == ClientRateLimit.sweepAbove)
        // A minute later every bucket is full again: adding a client sweeps them.
        _ = limit.admit(client: "new", perMinute: 60, at: now + .seconds(61))
        #expect(limit.clients == 1)
    }
}
