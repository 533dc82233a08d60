import Foundation
import Testing
@testable import SwitchyardCore

/// Blame at the scope a signal names: a pair, a model on an account, an account's free models, a model, a key.
struct ScopedHealthTests {
    let table: RoutingTable
    let book: HealthBook
    let small: ModelID
    let long: ModelID
    let groqFast: ModelID
    let groqKey: KeyID
    let start = Fixtures.start

    init() throws {
        table = try Fixtures.table()
        book = HealthBook(table: table, now: Fixtures.start)
        small = table.model(named: "small-fast")!.id
        long = table.model(named: "long-ctx")!.id
        groqFast = table.model(named: "groq-fast")!.id
        groqKey = table.key(labelled: "groq#1")!.id
    }

    func limited(_ scope: RateLimitScope, after seconds: Int? = 2) -> Outcome {
        Outcome(.rateLimited, retry: seconds.map { .after(.seconds($0)) }, message: "slow down", status: 429, scope: scope)
    }

    func pair(_ key: KeyID, _ model: ModelID, at now: Timestamp) -> Bool {
        book.withView { $0.isKeyUsable(key, at: now) && $0.isPairUsable(key: key, model: model, at: now) && $0.isModelUsable(model, at: now) }
    }

    @Test func aPairLimitHoldsOneModelOnOneKeyOnly() {
        let events = book.record(model: small, key: 0, outcome: limited(.keyModel), at: start)
        #expect(!pair(0, small, at: start))
        #expect(pair(0, long, at: start), "the key's other model keeps serving")
        #expect(pair(1, small, at: start), "the model keeps serving on the other keys")
        #expect(book.keyState(0, at: start).state == .healthy)
        #expect(events.contains { $0.name == "openrouter#1 × small-fast" && $0.to == "rate_limited" && $0.reason.hasPrefix("per key and model") })
        #expect(pair(0, small, at: start + .seconds(2)), "back when Retry-After passes")
    }

    @Test func anAmbiguousLimitWidensToTheKeyOnlyWhenASecondModelIsLimited() {
        _ = book.record(model: small, key: 0, outcome: limited(.keyModel, after: nil), at: start)
        #expect(book.keyState(0, at: start).state == .healthy)
        let events = book.record(model: long, key: 0, outcome: limited(.keyModel, after: 5), at: start + .seconds(1))
        #expect(book.keyState(0, at: start + .seconds(1)).state == .rateLimited(until: start + .seconds(6)))
        #expect(events.contains { $0.subject == .key(0) && $0.to == "rate_limited" })
        // Outside the window a second model's limit is a pair's again.
        _ = book.record(model: long, key: 1, outcome: limited(.keyModel), at: start)
        _ = book.record(model: small, key: 1, outcome: limited(.keyModel), at: start + .seconds(61))
        #expect(book.keyState(1, at: start + .seconds(61)).state == .healthy)
    }

    @Test func aModelLimitOnAnAccountHoldsItOnEveryKeyOfThatAccount() {
        _ = book.record(model: small, key: 0, outcome: limited(.accountModel, after: 30), at: start)
        #expect(!pair(0, small, at: start) && !pair(1, small, at: start), "both keys of account main")
        #expect(pair(2, small, at: start) && pair(3, small, at: start), "account spare serves")
        #expect(pair(0, long, at: start) && pair(1, long, at: start), "other models of the same keys serve")
        #expect(book.rateLimitHolds(at: start).map(\.name) == ["openrouter/main × small-fast"])
    }

    @Test func anAccountsFreeModelLimitHoldsOnlyItsFreeModels() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(of: "upstream: vendor/big:free", with: "upstream: vendor/big")
        let table = try Fixtures.table(yaml)
        let book = HealthBook(table: table, now: start)
        let small = table.model(named: "small-fast")!.id, big = table.model(named: "big-smart")!.id
        _ = book.record(model: small, key: 1, outcome: limited(.account, after: 10), at: start)
        let view = { (k: KeyID, m: ModelID) in book.withView { $0.isPairUsable(key: k, model: m, at: start) } }
        #expect(!view(0, small) && !view(1, small) && !view(1, table.model(named: "long-ctx")!.id))
        #expect(view(0, big), "a paid model is not covered by the free-model limit")
        #expect(view(2, small), "another account serves at once")
    }

    @Test func aModelBusyUpstreamHoldsTheModelEverywhereAndBlamesNoKey() {
        let events = book.record(model: small, key: 0, outcome: limited(.model, after: 3), at: start)
        for key in 0..<4 { #expect(!pair(key, small, at: start)) }
        #expect(pair(0, long, at: start))
        #expect(book.keyState(0, at: start).state == .healthy)
        #expect(events.contains { $0.subject == .model(small) && $0.to == "rate_limited" })
        // It comes back with no trial: every request may use it again.
        #expect(pair(0, small, at: start + .seconds(3)) && pair(1, small, at: start + .seconds(3)))
    }

    @Test func earliestUsableWaitsForThePairHold() {
        _ = book.record(model: small, key: 0, outcome: limited(.accountModel, after: 2), at: start)
        _ = book.record(model: small, key: 2, outcome: limited(.accountModel, after: 4), at: start)
        #expect(book.earliestUsable(models: [small], at: start) == start + .seconds(2))
        #expect(book.earliestUsable(models: [small, long], at: start) == start)
    }

    @Test func onAProvidersOnlyKeyOneFailingModelBlamesTheModelNotTheKey() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(
            of: "  groq-fast:", with: "  groq-big:    { provider: groq, upstream: llama-3.3-70b-versatile, context: 131072, speed: 2, quality: 5 }\n  groq-fast:")
        let table = try Fixtures.table(yaml.replacingOccurrences(of: "consecutive_failures_to_cool: 0", with: "consecutive_failures_to_cool: 2"))
        let book = HealthBook(table: table, now: start)
        let fast = table.model(named: "groq-fast")!.id, big = table.model(named: "groq-big")!.id
        let key = table.key(labelled: "groq#1")!.id
        for i in 0..<2 { _ = book.record(model: fast, key: key, outcome: Outcome(.transient, status: 500), at: start + .milliseconds(i)) }
        #expect(book.keyState(key, at: start).state == .healthy, "two failures of one model do not cool the only key")
        let events = book.record(model: fast, key: key, outcome: Outcome(.transient, status: 500), at: start + .milliseconds(2))
        #expect(book.modelState(fast, at: start).state.name == "outage")
        #expect(events.allSatisfy { $0.subject != .key(key) })
        // Failures on a second model of the key are the key's evidence.
        _ = book.record(model: big, key: key, outcome: Outcome(.transient, status: 500), at: start + .milliseconds(3))
        _ = book.record(model: big, key: key, outcome: Outcome(.transient, status: 500), at: start + .milliseconds(4))
        #expect(book.keyState(key, at: start + .milliseconds(5)).state.name == "cooling")
    }
}

/// The model circuit breaker and escalating key cooling.
struct CircuitBreakerTests {
    let start = Fixtures.start

    /// A model failing on two keys at once: an outage.
    func failOnTwoKeys(_ book: HealthBook, _ model: ModelID, at now: Timestamp) {
        _ = book.record(model: model, key: 0, outcome: Outcome(.transient, status: 503), at: now)
        _ = book.record(model: model, key: 1, outcome: Outcome(.transient, status: 503), at: now)
    }

    @Test func anOutageLetsOneTrialThroughAndDoublesOnFailure() throws {
        let table = try Fixtures.table()
        let book = HealthBook(table: table, now: start)
        let model = table.model(named: "small-fast")!.id
        failOnTwoKeys(book, model, at: start)
        #expect(book.modelState(model, at: start).state == .outage(until: start + .seconds(10)))
        let t1 = start + .seconds(10)
        #expect(book.modelState(model, at: t1).state == .probing)
        #expect(book.beginAttempt(key: 2, model: model, at: t1).allowed, "the single trial")
        #expect(!book.beginAttempt(key: 3, model: model, at: t1).allowed, "others go elsewhere while it runs")
        _ = book.record(model: model, key: 2, outcome: Outcome(.transient, status: 503), at: t1)
        #expect(book.modelState(model, at: t1).state == .outage(until: t1 + .seconds(20)), "a failed trial doubles the window")
        let t2 = t1 + .seconds(20)
        #expect(book.beginAttempt(key: 3, model: model, at: t2).allowed)
        let events = book.record(model: model, key: 3, outcome: .success, at: t2)
        #expect(book.modelState(model, at: t2).state == .healthy, "a successful trial closes it at once")
        #expect(events.contains { $0.subject == .model(model) && $0.to == "healthy" })
        // The next outage starts from the first window again.
        failOnTwoKeys(book, model, at: t2)
        #expect(book.modelState(model, at: t2).state == .outage(until: t2 + .seconds(10)))
    }

    @Test func theWindowStopsDoublingAtItsCap() throws {
        let table = try Fixtures.table(Fixtures.yaml + "\n  model_outage: 10s\n  model_outage_max: 30s\n")
        let book = HealthBook(table: table, now: start)
        let model = table.model(named: "small-fast")!.id
        failOnTwoKeys(book, model, at: start)
        var now = start
        var windows: [Duration] = []
        for _ in 0..<4 {
            guard let until = book.modelState(model, at: now).state.until else { break }
            windows.append(until - now)
            now = until
            _ = book.beginAttempt(key: 0, model: model, at: now)
            _ = book.record(model: model, key: 0, outcome: Outcome(.transient, status: 503), at: now)
        }
        #expect(windows == [.seconds(10), .seconds(20), .seconds(30), .seconds(30)])
    }

    @Test func aTrialThatSaysNothingFreesTheTrial() throws {
        let table = try Fixtures.table()
        let book = HealthBook(table: table, now: start)
        let model = table.model(named: "small-fast")!.id
        failOnTwoKeys(book, model, at: start)
        let t = start + .seconds(10)
        #expect(book.beginAttempt(key: 0, model: model, at: t).allowed)
        _ = book.record(model: model, key: 0, outcome: Outcome(.cancelled), at: t)
        #expect(book.beginAttempt(key: 1, model: model, at: t).allowed, "the cancelled trial's slot is free again")
    }

    @Test func keyCoolingEscalatesAfterFailedTrials() {
        var settings = HealthSettings()
        settings.consecutiveFailuresToCool = 2
        settings.cooldown = .seconds(10)
        settings.maxCooldown = .seconds(25)
        var key = KeyHealth(settings: settings, now: start)
        _ = key.record(.failure, at: start)
        _ = key.record(.failure, at: start)
        #expect(key.state == .cooling(until: start + .seconds(10)))
        var now = start + .seconds(10)
        _ = key.beginAttempt(at: now)
        _ = key.record(.failure, at: now)
        #expect(key.state == .cooling(until: now + .seconds(20)), "a failed trial cools again, twice as long")
        now = now + .seconds(20)
        _ = key.beginAttempt(at: now)
        _ = key.record(.failure, at: now)
        #expect(key.state == .cooling(until: now + .seconds(25)), "capped at max_cooldown")
        now = now + .seconds(25)
        _ = key.beginAttempt(at: now)
        _ = key.record(.success, at: now)
        #expect(key.state == .healthy)
        _ = key.record(.failure, at: now)
        _ = key.record(.failure, at: now)
        #expect(key.state == .cooling(until: now + .seconds(10)), "a success starts the ladder over")
    }
}
