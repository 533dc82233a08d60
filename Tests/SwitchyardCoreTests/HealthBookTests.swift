import Foundation
import Testing
@testable import SwitchyardCore

struct HealthBookTests {
    let table: RoutingTable
    let book: HealthBook

    init() throws {
        table = try Fixtures.table()
        book = HealthBook(table: table, now: Fixtures.start)
    }

    func usable(_ key: KeyID, at now: Timestamp = Fixtures.start) -> Bool {
        book.withView { $0.isKeyUsable(key, at: now) }
    }

    @Test func aModelOutageDisablesNoKey() {
        let model = table.model(named: "small-fast")!.id
        var now = Fixtures.start
        // The model answers 503 on every key, over and over.
        for round in 0..<20 {
            for key in 0..<4 {
                _ = book.record(model: model, key: key, outcome: Outcome(.transient, status: 503), at: now)
            }
            now = now + .milliseconds(100 * round)
        }
        for key in 0..<4 { #expect(usable(key, at: now), "key \(key)") }
        #expect(book.modelState(model, at: now).state != .healthy, "set aside (its outage window may have passed to a trial)")
        // Other models keep serving.
        #expect(book.withView { $0.isModelUsable(table.model(named: "long-ctx")!.id, at: now) })
    }

    @Test func aBadKeyIsBlamedWhileTheModelServesOnOthers() {
        let model = table.model(named: "small-fast")!.id
        var events: [HealthEvent] = []
        for i in 0..<12 {
            let now = Fixtures.start + .milliseconds(i)
            events += book.record(model: model, key: 0, outcome: Outcome(.transient, status: 500), at: now)
            events += book.record(model: model, key: 1, outcome: .success, at: now)
        }
        #expect(!usable(0, at: Fixtures.start + .seconds(1)))
        #expect(usable(1, at: Fixtures.start + .seconds(1)))
        #expect(book.modelState(model, at: Fixtures.start).state == .healthy)
        #expect(events.contains { $0.name == "openrouter#1" && $0.to == "disabled" })
        #expect(!events.contains { $0.subject == .model(model) })
    }

    @Test func aBadKeyDoesNotTakeAHealthyModelOut() {
        let model = table.model(named: "small-fast")!.id
        for i in 0..<30 {
            _ = book.record(model: model, key: 2, outcome: Outcome(.transient, status: 500), at: Fixtures.start + .milliseconds(i))
        }
        #expect(book.modelState(model, at: Fixtures.start + .seconds(1)).state == .healthy)
    }

    @Test func aDailyCapCoolsEveryKeyOfTheAccount() {
        let model = table.model(named: "small-fast")!.id
        let reset = Fixtures.start + .seconds(3600)
        let events = book.record(model: model, key: 0, outcome: Outcome(.accountExhausted, retry: .at(reset), status: 429), at: Fixtures.start)
        #expect(events.contains { $0.to == "exhausted" && $0.name == "openrouter/main" })
        #expect(!usable(0) && !usable(1))
        #expect(usable(2) && usable(3))
        #expect(usable(0, at: reset) && usable(1, at: reset))
        // No key is blamed for the account's cap.
        #expect(book.keyHealth(0).window.failures == 0)
    }

    @Test func manyKeysRejectedAtOnceIsAnIncident() {
        let model = table.model(named: "small-fast")!.id
        var events: [HealthEvent] = []
        for key in 0..<3 {
            events += book.record(model: model, key: key, outcome: Outcome(.keyInvalid, message: "User not found.", status: 401), at: Fixtures.start)
        }
        #expect(events.contains { $0.to == "incident" })
        // The keys are not removed; the provider pauses and then everything returns.
        for key in 0..<4 { #expect(book.keyHealth(key).state == .healthy, "key \(key)") }
        #expect(!usable(3, at: Fixtures.start + .seconds(1)))
        #expect(usable(3, at: Fixtures.start + .seconds(60)))
    }

    @Test func oneRejectedKeyIsRemoved() {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 1, outcome: Outcome(.keyInvalid, status: 401), at: Fixtures.start)
        #expect(!usable(1))
        #expect(usable(0) && usable(2) && usable(3))
        #expect(book.keyHealth(1).state.name == "removed")
    }

    @Test func retryAfterOnATransientPausesTheModelNotTheKey() {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 0, outcome: Outcome(.transient, retry: .after(.seconds(30)), status: 503), at: Fixtures.start)
        #expect(usable(0))
        #expect(!book.withView { $0.isModelUsable(model, at: Fixtures.start + .seconds(29)) })
        #expect(book.withView { $0.isModelUsable(model, at: Fixtures.start + .seconds(30)) })
    }

    @Test func clientFaultsBlameNothing() {
        let model = table.model(named: "small-fast")!.id
        for kind in [OutcomeClass.requestInvalid, .contextTooLong, .contentRefused, .requestTooLargeForModel, .cancelled] {
            for _ in 0..<20 { _ = book.record(model: model, key: 0, outcome: Outcome(kind), at: Fixtures.start) }
        }
        #expect(usable(0))
        #expect(book.keyHealth(0).window.count == 0)
        #expect(book.modelState(model, at: Fixtures.start).state == .healthy)
    }

    @Test func goneModelIsTakenOutNotTheKey() {
        let model = table.model(named: "big-smart")!.id
        _ = book.record(model: model, key: 0, outcome: Outcome(.modelGone, message: "No endpoints found", status: 404), at: Fixtures.start)
        #expect(book.modelState(model, at: Fixtures.start).state.name == "gone")
        #expect(usable(0))
    }

    @Test func healthCarriesOverAReloadForKeysThatRemain() throws {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 1, outcome: Outcome(.keyInvalid, status: 401), at: Fixtures.start)
        var env = Fixtures.environment
        env["K4"] = "sk-or-v1-replacedreplacedreplacedreplaced9999"
        let newTable = try Fixtures.table(environment: env)
        let newBook = HealthBook(table: newTable, now: Fixtures.start, carryingOver: book)
        #expect(newBook.keyHealth(1).state.name == "removed")
        #expect(newBook.keyHealth(3).state == .healthy)
    }
}

extension HealthBookTests {
    @Test func aProbingKeyGetsItsOneTrialThroughTheBook() {
        let model = table.model(named: "small-fast")!.id
        for i in 0..<10 {
            _ = book.record(model: model, key: 0, outcome: Outcome(.transient, status: 500), at: Fixtures.start + .milliseconds(i))
            _ = book.record(model: model, key: 1, outcome: .success, at: Fixtures.start + .milliseconds(i))
        }
        let later = Fixtures.start + .seconds(301)
        #expect(book.beginAttempt(key: 0, model: model, at: later).allowed)
        #expect(!book.beginAttempt(key: 0, model: model, at: later).allowed, "one trial at a time")
        _ = book.record(model: model, key: 0, outcome: .success, at: later)
        #expect(book.keyHealth(0).state == .healthy)
    }
}

struct AccountLimitTests {
    @Test func anAccountAtItsConfiguredLimitIsSkippedUntilTheWindowMoves() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(
            of: "      - { env: K4, account: spare }\n",
            with: "      - { env: K4, account: spare }\n    account_limits: { requests_per_minute: 3, requests_per_day: 5 }\n")
        let table = try Fixtures.table(yaml)
        #expect(table.accounts[0].requestsPerMinute == 3)
        let book = HealthBook(table: table, now: Fixtures.start)
        let model = table.model(named: "small-fast")!.id
        var now = Fixtures.start
        // Keys 0 and 1 share account "main": three requests between them fill its minute.
        #expect(book.beginAttempt(key: 0, model: model, at: now).allowed)
        #expect(book.beginAttempt(key: 1, model: model, at: now + .seconds(1)).allowed)
        #expect(book.beginAttempt(key: 0, model: model, at: now + .seconds(2)).allowed)
        now = now + .seconds(3)
        #expect(!book.beginAttempt(key: 1, model: model, at: now).allowed)
        #expect(!book.withView { $0.isKeyUsable(0, at: now) })
        #expect(book.withView { $0.isKeyUsable(2, at: now) }, "the other account is untouched")
        #expect(book.earliestRecovery(of: [0, 1], at: now) == Fixtures.start + .seconds(60))
        // The first request leaves the minute at +60s; the day's cap of 5 still counts.
        #expect(book.beginAttempt(key: 1, model: model, at: Fixtures.start + .seconds(60)).allowed)
        #expect(book.beginAttempt(key: 1, model: model, at: Fixtures.start + .seconds(200)).allowed)
        #expect(!book.beginAttempt(key: 0, model: model, at: Fixtures.start + .seconds(400)).allowed, "5 a day")
        #expect(book.keyState(0, at: Fixtures.start + .seconds(400)).reason.contains("configured limit"))
        let tomorrow = (Fixtures.start + .seconds(400)).nextUTCMidnight
        #expect(book.beginAttempt(key: 0, model: model, at: tomorrow).allowed)
    }
}
