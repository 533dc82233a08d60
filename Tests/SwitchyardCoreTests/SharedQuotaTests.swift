import Foundation
import Testing

@testable import SwitchyardCore

/// Configured limits over several replicas: the store's refusal holds the account, and without the store each
/// replica keeps to its share of each limit.
struct SharedQuotaTests {
    static let yaml = Fixtures.yaml.replacingOccurrences(
        of: "      - { env: K4, account: spare }\n",
        with: "      - { env: K4, account: spare }\n    account_limits: { requests_per_minute: 30, requests_per_day: 100 }\n")
    let table: RoutingTable
    let book: HealthBook
    let now = Fixtures.start

    init() throws {
        table = try Fixtures.table(Self.yaml)
        book = HealthBook(table: table, now: Fixtures.start)
    }

    @Test func onlyKeysWithAConfiguredLimitAreReserved() throws {
        #expect(book.sharedQuotas(for: 0) == [SharedQuota(subject: "account:openrouter/main", perMinute: 30, perDay: 100)])
        let groq = try #require(table.key(labelled: "groq#1"))
        #expect(book.sharedQuotas(for: groq.id).isEmpty, "no limit: the store is never asked")
    }

    @Test func aRefusalHoldsTheAccountUntilTheStoreSaid() {
        let until = now + .seconds(42)
        let (allowed, events) = book.settle(.refused(subject: "account:openrouter/main", until: until), key: 0, at: now, share: 3)
        #expect(!allowed)
        #expect(events.map(\.to) == ["limited"])
        #expect(events.first?.reason == "at its configured limit across replicas")
        #expect(!book.withView { $0.isKeyUsable(1, at: now) }, "every key of the account")
        #expect(book.withView { $0.isKeyUsable(2, at: now) }, "not the other account (its own limit, not reached)")
        #expect(book.earliestRecovery(of: [0, 1], at: now) == until, "a 503's Retry-After")
        #expect(book.withView { $0.isKeyUsable(0, at: until) })
        #expect(book.settle(.refused(subject: "account:openrouter/main", until: until), key: 1, at: now, share: 3).events.isEmpty, "said once")
    }

    @Test func withoutTheStoreAReplicaSendsItsShareOfTheLimit() {
        book.setReplicaShare(3)
        var sent = 0
        for i in 0..<40 {
            let t = now + .milliseconds(i)
            guard book.canBegin(key: 0, model: 0, at: t), book.settle(.unavailable, key: 0, at: t, share: 3).allowed else { continue }
            #expect(book.beginAttempt(key: 0, model: 0, at: t).allowed)
            sent += 1
        }
        #expect(sent == 10, "30 a minute over 3 replicas")
        #expect(book.keyState(0, at: now).reason.contains("share (1/3)"))
        book.setReplicaShare(1)
        #expect(book.canBegin(key: 0, model: 0, at: now + .seconds(1)), "the store decides again once it is back")
    }

    @Test func aSlowAnswerKeepsThatRequestToTheShareAlone() {
        for i in 0..<10 { #expect(book.beginAttempt(key: 0, model: 0, at: now + .milliseconds(i)).allowed) }
        #expect(!book.settle(.unavailable, key: 0, at: now, share: 3).allowed, "10 sent here already: this replica's share")
        #expect(book.canBegin(key: 0, model: 0, at: now), "the store is still asked for the next request")
    }

    @Test func aShareOfNothingSendsNothing() throws {
        book.setReplicaShare(40)
        #expect(!book.canBegin(key: 0, model: 0, at: now))
        let groq = try #require(table.key(labelled: "groq#1"))
        #expect(book.withView { $0.isKeyUsable(groq.id, at: now) }, "an account without a limit is not held")
    }
}
