import Foundation
import Testing
@testable import SwitchyardCore

struct SavedStateTests {
    let now = Fixtures.start

    @Test func keysSetAsideAndAccountCountsComeBackAfterARestart() throws {
        let table = try Fixtures.table(
            Fixtures.yaml.replacingOccurrences(
                of: "      - { env: K4, account: spare }\n",
                with: "      - { env: K4, account: spare }\n    account_limits: { requests_per_minute: 5, requests_per_day: 50 }\n"))
        let before = HealthBook(table: table, now: now)
        let model = table.model(named: "small-fast")!.id
        // Key 0 is exhausted for an hour, key 1 rejected as invalid, account "spare" spent three requests.
        _ = before.record(model: model, key: 0, outcome: Outcome(.keyExhausted, retry: .after(.seconds(3600)), message: "no credits", status: 402), at: now)
        _ = before.record(model: model, key: 1, outcome: Outcome(.keyInvalid, message: "bad key", status: 401), at: now)
        for _ in 0..<3 { _ = before.beginAttempt(key: 2, model: model, at: now) }
        let saved = before.savedState(at: now)
        #expect(saved.keys.map(\.label).sorted() == ["openrouter#1", "openrouter#2"])
        #expect(!saved.keys.contains { $0.fingerprint.contains("aaaa") || $0.reason.contains("sk-or") })

        let restart = now + .seconds(10)
        let after = HealthBook(table: table, now: restart)
        let events = after.restore(saved, at: restart)
        #expect(events.count == 2)
        #expect(after.keyState(0, at: restart).state == .removed(until: now + .seconds(3600)))
        #expect(after.keyState(1, at: restart).state.name == "removed")
        #expect(after.keyState(2, at: restart).state == .healthy)
        #expect(after.withView { $0.accountHealth(1) }.today == 3)
        // The exhausted key stays out until its expiry, then gets its one trial.
        #expect(!after.withView { $0.isKeyUsable(0, at: now + .seconds(3599)) })
        #expect(after.withView { $0.isKeyUsable(0, at: now + .seconds(3600)) })
    }

    @Test func aLabelNowGivenToAnotherKeyStartsHealthy() throws {
        let table = try Fixtures.table()
        let before = HealthBook(table: table, now: now)
        _ = before.record(model: 0, key: 0, outcome: Outcome(.keyInvalid, status: 401), at: now)
        var environment = Fixtures.environment
        environment["K1"] = "sk-or-v1-ffffffffffffffffffffffffffff9999"
        let replaced = try Fixtures.table(environment: environment)
        let after = HealthBook(table: replaced, now: now)
        #expect(after.restore(before.savedState(at: now), at: now).isEmpty)
        #expect(after.keyState(0, at: now).state == .healthy)
    }

    @Test func anExhaustedAccountStaysOutUntilItsReset() throws {
        let table = try Fixtures.table()
        let before = HealthBook(table: table, now: now)
        let reset = now + .seconds(7200)
        _ = before.record(model: 0, key: 0, outcome: Outcome(.accountExhausted, retry: .at(reset), message: "per-day", status: 429), at: now)
        let after = HealthBook(table: table, now: now)
        _ = after.restore(before.savedState(at: now), at: now + .seconds(5))
        #expect(!after.withView { $0.isKeyUsable(1, at: now + .seconds(60)) }, "every key of the account")
        #expect(after.withView { $0.isKeyUsable(1, at: reset) })
    }
}

struct UsageLedgerTests {
    @Test func daysAreUTCCalendarDays() {
        #expect(UsageLedger.dayText(0) == "1970-01-01")
        #expect(UsageLedger.dayText(UsageLedger.day(Timestamp(secondsSinceEpoch: 1_800_000_000))) == "2027-01-15")
        #expect(UsageLedger.dayText(UsageLedger.day(Timestamp(secondsSinceEpoch: 951_782_400))) == "2000-02-29")
        #expect(UsageLedger.day(parsing: "2000-02-29") == UsageLedger.day(Timestamp(secondsSinceEpoch: 951_782_400)))
        #expect(UsageLedger.firstDay(of: 7, at: Timestamp(secondsSinceEpoch: 1_800_000_000)) == "2027-01-09")
    }

    @Test func countsPerDayKeyAndModelAndHandsChangesOverOnce() {
        let ledger = UsageLedger()
        let t = Fixtures.start
        ledger.attempt(key: "openrouter#1", model: "a", failed: false, at: t)
        ledger.attempt(key: "openrouter#1", model: "a", failed: true, at: t)
        ledger.tokens(key: "openrouter#1", model: "a", prompt: 12, completion: 30, at: t)
        ledger.attempt(key: "openrouter#1", model: "a", failed: false, at: t + .seconds(86_400))
        let drained = ledger.drain().sorted(by: UsageRow.order)
        #expect(drained.count == 2)
        #expect(drained[1] == UsageRow(day: "2027-01-15", key: "openrouter#1", model: "a", requests: 2, failures: 1, promptTokens: 12, completionTokens: 30))
        #expect(ledger.drain().isEmpty, "a drain hands each change over once")
        // A failed write puts its rows back for the next one.
        ledger.restore(drained)
        #expect(ledger.drain().map(\.requests).reduce(0, +) == 3)
        #expect(ledger.totals(days: 1, at: t + .seconds(86_400)).map(\.requests) == [1])
        #expect(ledger.totals(days: 2, at: t + .seconds(86_400)).map(\.requests) == [1, 2])
    }

    @Test func tokensAreReadFromTheAnswersUsage() {
        let body = #"{"id":"x","choices":[{"message":{"content":"hi \"prompt_tokens\""}}],"usage":{"prompt_tokens": 17,"completion_tokens":42,"total_tokens":59}}"#
        #expect(UsageTokens.scan(body) == (17, 42))
        #expect(UsageTokens.scan(#"{"choices":[]}"#) == (0, 0))
        // OpenAI's details objects, fields after usage, usage before the choices, and only one of the two counts.
        let details = #"{"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}},"system_fingerprint":"fp"}"#
        #expect(UsageTokens.scan(details) == (9, 7))
        #expect(UsageTokens.scan(#"{"usage":{"completion_tokens":5},"choices":[{"message":{"content":"a \"prompt_tokens\": 3"}}]}"#) == (0, 5))
        #expect(UsageTokens.scan(#"{"usage":{"prompt_tokens":12}}"#) == (12, 0))
    }
}

struct KeyQuotaTests {
    let now = Fixtures.start

    @Test func aKeyWithItsOwnLimitIsSkippedAtItWhileItsAccountSiblingServes() throws {
        let table = try Fixtures.table(
            Fixtures.yaml.replacingOccurrences(of: "- { env: K1, account: main }", with: "- { env: K1, account: main, requests_per_minute: 2 }"))
        #expect(table.keys[0].requestsPerMinute == 2)
        let book = HealthBook(table: table, now: now)
        let usable = { (k: KeyID, t: Timestamp) in book.withView { $0.isKeyUsable(k, at: t) } }
        #expect(book.beginAttempt(key: 0, model: 0, at: now).allowed)
        #expect(book.beginAttempt(key: 0, model: 0, at: now + .seconds(1)).allowed)
        #expect(!usable(0, now + .seconds(2)))
        #expect(!book.beginAttempt(key: 0, model: 0, at: now + .seconds(2)).allowed, "no third send in the minute")
        #expect(usable(1, now + .seconds(2)), "the account's other key has no limit of its own")
        #expect(book.keyState(0, at: now + .seconds(2)).reason == "key at its configured limit")
        #expect(book.earliestRecovery(of: [0], at: now + .seconds(2)) == now + .seconds(60))
        #expect(usable(0, now + .seconds(60)))

        // Its counts survive a restart.
        let saved = book.savedState(at: now + .seconds(2))
        #expect(saved.keyQuotas.map(\.name) == ["openrouter#1"])
        let after = HealthBook(table: table, now: now + .seconds(3))
        _ = after.restore(saved, at: now + .seconds(3))
        #expect(!after.withView { $0.isKeyUsable(0, at: now + .seconds(3)) })
    }

    @Test func anUnknownKeyFieldIsNamedWithItsLine() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(of: "- { env: K1, account: main }", with: "- { env: K1, account: main, request_per_minute: 2 }")
        let error = #expect(throws: ConfigError.self) { try Fixtures.table(yaml) }
        #expect(error?.description.contains("routes.yaml:5:35: providers.openrouter.keys[0].request_per_minute") == true, "\(String(describing: error))")
        #expect(error?.description.contains("did you mean 'requests_per_minute'") == true)
    }
}
