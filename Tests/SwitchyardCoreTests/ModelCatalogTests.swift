import Foundation
import Testing
@testable import SwitchyardCore

struct ModelCatalogTests {
    let now = Fixtures.start

    @Test func readsOpenRouterAndGroqModelLists() throws {
        let openrouter = #"{"data":[{"id":"vendor/small:free","context_length":16384,"top_provider":{"context_length":8192}},{"id":"x/y","context_length":null}]}"#
        let listing = try #require(ModelListing.parse(Array(openrouter.utf8), at: now))
        #expect(listing.contexts["vendor/small:free"] == .some(16384))
        #expect(listing.contexts["x/y"] == .some(nil))
        let groq = #"{"object":"list","data":[{"id":"llama-3.1-8b-instant","object":"model","context_window":131072}]}"#
        #expect(try #require(ModelListing.parse(Array(groq.utf8), at: now)).contexts["llama-3.1-8b-instant"] == .some(131072))
        #expect(ModelListing.parse(Array(#"{"error":{"message":"no"}}"#.utf8), at: now) == nil)
        #expect(ModelListing.parse(Array("<html>".utf8), at: now) == nil)
    }

    @Test func aDroppedModelIsRetiredAndAChangedContextIsUsed() throws {
        let table = try Fixtures.table(Fixtures.yaml.replacingOccurrences(of: "base_url: https://openrouter.ai/api/v1", with: "base_url: https://openrouter.ai/api/v1\n    sync_catalog: true"))
        let listing = ModelListing(contexts: ["vendor/small:free": 4096, "vendor/long:free": 128000], fetchedAt: now)
        let (adjusted, changes) = ModelCatalog.apply(["openrouter": listing], to: table)
        let big = try #require(table.model(named: "big-smart"))
        let small = try #require(table.model(named: "small-fast"))
        #expect(changes.contains(CatalogChange(model: "big-smart", provider: "openrouter", kind: .retired)))
        #expect(changes.contains(CatalogChange(model: "small-fast", provider: "openrouter", kind: .context(configured: 8192, listed: 4096))))
        #expect(changes.count == 2, "groq does not sync; long-ctx is unchanged")
        #expect(adjusted.models[big.id].retired != nil)
        #expect(adjusted.models[small.id].context == 4096)

        // The planner skips the retired model and sizes the other by the listed context.
        let planner = RoutePlanner(table: adjusted)
        let book = HealthBook(table: adjusted, now: now)
        let route = try #require(adjusted.route(named: "listed"))
        let plan = book.withView {
            planner.plan(route: route, request: PlanRequest(estimatedPromptTokens: 3500, maxTokens: 512), health: $0, rotation: KeyRotation(providers: 2), at: now)
        }
        #expect(plan.candidates.map { adjusted.models[$0.model].name } == ["long-ctx"])
        #expect(plan.skipped.contains(SkippedModel(model: big.id, reason: .retired)))
        #expect(plan.skipped.contains { $0.model == small.id })
    }

    @Test func providersWithoutSyncAreLeftAlone() throws {
        let table = try Fixtures.table()
        let (adjusted, changes) = ModelCatalog.apply(["openrouter": ModelListing(contexts: [:], fetchedAt: now)], to: table)
        #expect(changes.isEmpty)
        #expect(adjusted.models.allSatisfy { $0.retired == nil })
    }
}
