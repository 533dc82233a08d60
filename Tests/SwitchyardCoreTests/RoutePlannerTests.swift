import Foundation
import Testing
@testable import SwitchyardCore

struct RoutePlannerTests {
    let table: RoutingTable
    let book: HealthBook
    let planner: RoutePlanner
    let rotation: KeyRotation

    init() throws {
        table = try Fixtures.table()
        book = HealthBook(table: table, now: Fixtures.start)
        planner = RoutePlanner(table: table)
        rotation = KeyRotation(providers: table.providers.count)
    }

    func plan(_ route: String, prompt: Int = 100, maxTokens: Int? = nil, affinity: String? = nil, at now: Timestamp = Fixtures.start) -> RoutePlan {
        let route = table.target(named: route)!
        return book.withView { view in
            planner.plan(
                route: route, request: PlanRequest(estimatedPromptTokens: prompt, maxTokens: maxTokens, affinity: affinity),
                health: view, rotation: rotation, at: now)
        }
    }

    func names(_ plan: RoutePlan) -> [String] { plan.candidates.map { table.models[$0.model].name } }

    @Test func rankingFollowsPreference() {
        #expect(names(plan("auto")) == ["small-fast", "long-ctx", "big-smart"])
        #expect(names(plan("quality")) == ["big-smart", "long-ctx", "small-fast"])
        #expect(names(plan("balanced")) == ["big-smart", "small-fast", "long-ctx"])
        #expect(names(plan("listed")) == ["big-smart", "small-fast", "long-ctx"])
    }

    @Test func onlyModelsThatFitAreEligible() {
        // 8192 × 0.95 = 7782 usable on the 8K models.
        let fits = plan("auto", prompt: 7782 - 512)
        #expect(names(fits) == ["small-fast", "long-ctx", "big-smart"])
        let tooLong = plan("auto", prompt: 7782 - 511)
        #expect(names(tooLong) == ["long-ctx"])
        #expect(tooLong.skipped.map(\.reason) == [.contextTooSmall(usable: 7782), .contextTooSmall(usable: 7782)])
        #expect(tooLong.neededTokens == 7783)
        // max_tokens replaces the default reservation.
        #expect(names(plan("auto", prompt: 7000, maxTokens: 782)) == ["small-fast", "long-ctx", "big-smart"])
    }

    @Test func requestSizeLimitsSkipAModel() {
        let p = plan("groq-fast", prompt: 6000)
        #expect(p.candidates.isEmpty)
        #expect(p.skipped.first?.reason == .requestTooLarge(limit: 6000))
    }

    @Test func roundRobinIsFairAcrossHealthyKeys() {
        var firstChoice = [KeyID: Int]()
        let n = 1001
        for _ in 0..<n {
            let p = plan("auto")
            firstChoice[p.candidates[0].keys[0], default: 0] += 1
            // Every usable key is offered once per model, for failover.
            #expect(Set(p.candidates[0].keys) == [0, 1, 2, 3])
            // Models of one provider share the turn.
            #expect(p.candidates[1].keys == p.candidates[0].keys)
        }
        for key in 0..<4 {
            #expect(abs(firstChoice[key, default: 0] - n / 4) <= 1, "key \(key): \(firstChoice[key, default: 0])")
        }
    }

    @Test func roundRobinSkipsUnusableKeysAndStaysFair() {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 1, outcome: Outcome(.keyInvalid, status: 401), at: Fixtures.start)
        var counts = [KeyID: Int]()
        for _ in 0..<300 { counts[plan("auto").candidates[0].keys[0], default: 0] += 1 }
        #expect(counts[1] == nil)
        #expect(counts.values.allSatisfy { $0 == 100 })
    }

    @Test func affinityPrefersItsKeyAndFallsBack() {
        let preferred = plan("auto", affinity: "user-42").candidates[0].keys[0]
        for _ in 0..<10 { #expect(plan("auto", affinity: "user-42").candidates[0].keys[0] == preferred) }
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: preferred, outcome: Outcome(.keyInvalid, status: 401), at: Fixtures.start)
        let fallback = plan("auto", affinity: "user-42").candidates[0].keys
        #expect(!fallback.contains(preferred))
        #expect(fallback.count == 3)
    }

    @Test func modelsWithNoUsableKeyAreSkipped() {
        let model = table.model(named: "small-fast")!.id
        for key in 0..<4 {
            _ = book.record(
                model: model, key: key, outcome: Outcome(.rateLimited, retry: .after(.seconds(10)), status: 429, scope: .key), at: Fixtures.start)
        }
        let p = plan("auto")
        #expect(p.candidates.isEmpty)
        #expect(p.skipped.allSatisfy { $0.reason == .noUsableKey })
        #expect(book.earliestRecovery(of: [0, 1, 2, 3], at: Fixtures.start) == Fixtures.start + .seconds(10))
        #expect(names(plan("auto", at: Fixtures.start + .seconds(10))).count == 3)
    }

    @Test func aPairLimitSkipsThePairNotTheKey() {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 0, outcome: Outcome(.rateLimited, retry: .after(.seconds(5)), status: 429), at: Fixtures.start)
        let p = plan("auto")
        #expect(!p.candidates[0].keys.contains(0))
        #expect(p.candidates[1].keys.contains(0), "long-ctx still has key 0")
        for key in 1..<4 {
            _ = book.record(model: model, key: key, outcome: Outcome(.rateLimited, retry: .after(.seconds(5)), status: 429), at: Fixtures.start)
        }
        let all = plan("auto")
        #expect(names(all) == ["long-ctx", "big-smart"])
        #expect(all.skipped == [SkippedModel(model: model, reason: .rateLimitedOnEveryKey)])
    }

    @Test func headroomPrefersTheAccountWithMoreLeftThenTheBetterKey() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(
            of: "      - { env: K4, account: spare }\n", with: "      - { env: K4, account: spare }\n    account_limits: { requests_per_minute: 20 }\n")
        let table = try Fixtures.table(yaml)
        let book = HealthBook(table: table, now: Fixtures.start)
        let planner = RoutePlanner(table: table)
        let rotation = KeyRotation(providers: table.providers.count)
        let model = table.model(named: "small-fast")!.id
        func keys() -> [KeyID] {
            book.withView {
                planner.plan(route: table.route(named: "auto")!, request: PlanRequest(estimatedPromptTokens: 10), health: $0, rotation: rotation, at: Fixtures.start)
            }.candidates[0].keys
        }
        // Three requests drawn on account main: spare (keys 2, 3) has more left and goes first, whatever the turn.
        for _ in 0..<3 { _ = book.beginAttempt(key: 0, model: model, at: Fixtures.start) }
        for _ in 0..<8 { #expect(Set(keys().prefix(2)) == [2, 3]) }
        // Among equals, the better recent success rate first, once the window holds min_requests (10) outcomes.
        for i in 0..<5 {
            _ = book.record(model: model, key: 2, outcome: Outcome(.transient, status: 500), at: Fixtures.start + .milliseconds(i))
            _ = book.record(model: model, key: 2, outcome: .success, at: Fixtures.start + .milliseconds(i))
        }
        for i in 0..<10 { _ = book.record(model: model, key: 3, outcome: .success, at: Fixtures.start + .milliseconds(i)) }
        for _ in 0..<4 { #expect(keys().first == 3) }
        #expect(book.keyRank(3, at: Fixtures.start).text == "20 requests left, 100% ok")
        #expect(book.keyRank(1, at: Fixtures.start).text == "17 requests left, too few recent requests to rate")
        let text = PlanExplanation(
            plan: book.withView { planner.plan(route: table.route(named: "auto")!, request: PlanRequest(estimatedPromptTokens: 10), health: $0, rotation: rotation, at: Fixtures.start, advance: false) },
            route: table.route(named: "auto")!, request: PlanRequest(estimatedPromptTokens: 10), table: table, health: book, at: Fixtures.start
        ).lines.joined(separator: "\n")
        #expect(text.contains("key order: headroom"))
        #expect(text.contains("openrouter#4: 20 requests left, 100% ok; openrouter#3: 20 requests left, 50% ok; openrouter#1: 17 requests left"))
    }

    @Test func aKeyThatLostARequestOrTwoKeepsItsTurn() {
        #expect(KeyRank(headroom: nil, successRate: 0.95) == KeyRank(headroom: nil, successRate: nil))
        #expect(KeyRank(headroom: nil, successRate: 0.9999) == KeyRank(headroom: nil, successRate: 1))
        #expect(KeyRank(headroom: nil, successRate: 0.85) < KeyRank(headroom: nil, successRate: 0.9))
        #expect(KeyRank(headroom: 3, successRate: 1) < KeyRank(headroom: 4, successRate: 0.1), "requests left come first")
    }

    @Test func roundRobinSelectionIgnoresHeadroom() throws {
        let table = try Fixtures.table(Fixtures.yaml + "\nrouting: { key_selection: round_robin }\n")
        #expect(table.routing.keySelection == .roundRobin)
        let book = HealthBook(table: table, now: Fixtures.start)
        let model = table.model(named: "small-fast")!.id
        for i in 0..<5 {
            _ = book.record(model: model, key: 0, outcome: Outcome(.transient, status: 500), at: Fixtures.start + .milliseconds(i))
            _ = book.record(model: model, key: 0, outcome: .success, at: Fixtures.start + .milliseconds(i))
        }
        let planner = RoutePlanner(table: table)
        let rotation = KeyRotation(providers: table.providers.count)
        var firsts = Set<KeyID>()
        for _ in 0..<4 {
            firsts.insert(book.withView {
                planner.plan(route: table.route(named: "auto")!, request: PlanRequest(estimatedPromptTokens: 10), health: $0, rotation: rotation, at: Fixtures.start)
            }.candidates[0].keys[0])
        }
        #expect(firsts == [0, 1, 2, 3])
    }

    @Test func unavailableModelsAreSkipped() {
        let model = table.model(named: "small-fast")!.id
        _ = book.record(model: model, key: 0, outcome: Outcome(.modelGone, status: 404), at: Fixtures.start)
        let p = plan("auto")
        #expect(names(p) == ["long-ctx", "big-smart"])
        #expect(p.skipped == [SkippedModel(model: model, reason: .modelUnavailable)])
    }

    @Test func aModelNameIsAOneModelRoute() {
        #expect(names(plan("long-ctx")) == ["long-ctx"])
        #expect(table.target(named: "nope") == nil)
    }

    @Test func explanationSaysWhy() {
        let p = plan("auto", prompt: 20000)
        let route = table.route(named: "auto")!
        let text = PlanExplanation(
            plan: p, route: route, request: PlanRequest(estimatedPromptTokens: 20000), table: table, health: book, at: Fixtures.start
        ).lines.joined(separator: "\n")
        #expect(text.contains("1. long-ctx"))
        #expect(text.contains("small-fast: needs 20512 tokens but its context 8192 leaves 7782 usable (5% margin)"))
        #expect(text.contains("big-smart: needs 20512 tokens"))
    }
}
