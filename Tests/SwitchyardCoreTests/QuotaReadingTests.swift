import Testing
@testable import SwitchyardCore

struct QuotaReadingTests {
    let now = Timestamp(secondsSinceEpoch: 1_800_000_000)

    func read(_ headers: [(name: String, value: String)]) -> QuotaReading? { QuotaReading.read(headers, now: now) }

    @Test func readsGroqStyleHeadersWithDurationResets() throws {
        let reading = try #require(
            read(
                [
                    ("content-type", "application/json"), ("X-RateLimit-Limit-Requests", "14400"),
                    ("x-ratelimit-remaining-requests", "14370"), ("x-ratelimit-reset-requests", "2m59.56s"),
                    ("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "7.66s"),
                ]))
        #expect(reading.remainingRequests == 14370)
        #expect(reading.requestsReset == now + .milliseconds(179_560))
        #expect(reading.remainingTokens == 0)
        #expect(reading.tokensReset == now + .milliseconds(7_660))
    }

    @Test func readsOpenRouterStyleHeadersWithEpochMillisecondReset() throws {
        let reading = try #require(
            read([("X-RateLimit-Remaining", "3"), ("X-RateLimit-Reset", "1800003600000")]))
        #expect(reading.remainingRequests == 3)
        #expect(reading.requestsReset == Timestamp(millisecondsSinceEpoch: 1_800_003_600_000))
    }

    @Test func ignoresAnswersWithoutUsableLimits() {
        #expect(read([("content-type", "application/json"), ("x-request-id", "abc")] ) == nil)
        // A count with no reset says nothing about when to come back.
        #expect(read([("x-ratelimit-remaining-requests", "0")] ) == nil)
        #expect(read([("x-ratelimit-remaining-requests", "many"), ("x-ratelimit-reset-requests", "soon")] ) == nil)
    }

    @Test func anAccountCountsDownWhatTheHeadersSaidAndWaitsForTheReset() {
        var account = AccountHealth()
        let reset = now + .seconds(30)
        let closed = account.learn(QuotaReading(remainingRequests: 2, requestsReset: reset), at: now)
        #expect(!closed)
        account.count(at: now)
        #expect(account.hasCapacity(at: now))
        account.count(at: now)
        #expect(!account.hasCapacity(at: now), "two sends spent what the upstream said was left")
        #expect(account.capacityReturns(at: now) == reset)
        #expect(account.limitReason(at: now) == "upstream reports no requests left")
        #expect(account.hasCapacity(at: reset), "the window reset")
    }

    @Test func withinOneWindowTheLowestCountWinsWhateverOrderAnswersArriveIn() {
        var account = AccountHealth()
        let reset = now + .seconds(30)
        _ = account.learn(QuotaReading(remainingRequests: 0, requestsReset: reset), at: now)
        // A slower answer from before carries an older, higher count: it must not reopen the account.
        let closed = account.learn(QuotaReading(remainingRequests: 5, requestsReset: reset - .seconds(1)), at: now)
        #expect(!closed)
        #expect(!account.hasCapacity(at: now))
        // Once the window has passed, a new reading replaces the old one.
        let later = reset + .seconds(1)
        _ = account.learn(QuotaReading(remainingRequests: 5, requestsReset: later + .seconds(60)), at: later)
        #expect(account.hasCapacity(at: later))
    }

    @Test func anEmptyTokenBudgetBlocksUntilItsReset() {
        var account = AccountHealth()
        let closed = account.learn(QuotaReading(remainingTokens: 0, tokensReset: now + .seconds(7)), at: now)
        #expect(closed)
        #expect(!account.hasCapacity(at: now + .seconds(6)))
        #expect(account.limitReason(at: now) == "upstream reports no tokens left")
        #expect(account.hasCapacity(at: now + .seconds(7)))
    }

    @Test func theHealthBookSkipsEveryKeyOfTheAccountTheHeadersClosed() throws {
        let table = try Fixtures.table()
        let book = HealthBook(table: table, now: now)
        let key = 0
        let sibling = table.keys.first { $0.id != key && $0.account == table.keys[key].account }
        let events = book.learn(key: key, QuotaReading(remainingRequests: 0, requestsReset: now + .seconds(20)), at: now)
        #expect(events.count == 1)
        #expect(events.first?.to == "limited")
        let usable = { (k: KeyID, t: Timestamp) in book.withView { $0.isKeyUsable(k, at: t) } }
        #expect(!usable(key, now))
        if let sibling { #expect(!usable(sibling.id, now)) }
        #expect(book.keyState(key, at: now).reason.contains("upstream reports no requests left"))
        #expect(book.earliestRecovery(of: [key], at: now) == now + .seconds(20))
        #expect(usable(key, now + .seconds(20)))
    }
}
