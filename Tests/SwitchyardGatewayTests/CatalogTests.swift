import FakeUpstream
import Foundation
import Logging
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct CatalogSyncTests {
    static let syncing = Harness.config.replacingOccurrences(of: "    kind: openrouter\n", with: "    kind: openrouter\n    sync_catalog: true\n")

    @Test func aRetiredModelDisappearsFromPlanningAndAChangedContextIsUsed() async throws {
        #expect(Self.syncing.contains("sync_catalog: true"))
        // The provider no longer lists gemma (other-8k) and now gives phi-3 (long) 32K instead of 128K.
        let script = """
            models: { "meta-llama/llama-3.1-8b-instruct:free": 8192, "microsoft/phi-3-mini-128k-instruct:free": 32000, "openchat/openchat-7b:free": 8192 }
            models_behavior: { "meta-llama/llama-3.1-8b-instruct:free": { fault: error_503 } }
            """
        try await withHarness(config: Self.syncing, script: script) { h in
            let sync = CatalogSync(store: h.store, upstream: h.upstream, clock: h.clock, logger: Logger(label: "test"))
            let changes = await sync.syncNow()
            #expect(changes.contains(CatalogChange(model: "other-8k", provider: "openrouter", kind: .retired)))
            #expect(changes.contains(CatalogChange(model: "long", provider: "openrouter", kind: .context(configured: 128000, listed: 32000))))
            #expect(h.store.snapshot.table.model(named: "long")?.context == 32000)

            // fast-8k fails on every key: traffic moves on, past the retired model, to long.
            for i in 0..<4 {
                let reply = try await h.post(chat("catalog \(i)"))
                #expect(reply.status == 200)
                #expect(reply.header("x-switchyard-model") == "long")
            }
            #expect(!h.upstreamRequests().contains { $0.model == "google/gemma-2-9b-it:free" }, "never sent to the retired model")
            // A prompt that fitted 128K but not the listed 32K is refused before any upstream call.
            let before = h.upstreamRequests().count
            let big = try await h.post(chat(String(repeating: "word ", count: 30_000), model: "long"))
            #expect(big.status == 400)
            #expect(h.upstreamRequests().count == before)

            let stats = try await h.get("/admin/stats")
            #expect(stats.body.contains(#""name":"other-8k""#))
            #expect(stats.body.contains(#""state":"retired""#))
        }
    }

    @Test func aReloadKeepsWhatTheCatalogSaid() async throws {
        let script = #"models: { "meta-llama/llama-3.1-8b-instruct:free": 8192, "microsoft/phi-3-mini-128k-instruct:free": 128000, "openchat/openchat-7b:free": 8192 }"#
        try await withHarness(config: Self.syncing, script: script, reloadable: true) { h in
            await CatalogSync(store: h.store, upstream: h.upstream, clock: h.clock, logger: Logger(label: "test")).syncNow()
            #expect(h.store.snapshot.table.model(named: "other-8k")?.retired != nil)
            let reload = try await h.post("", path: "/admin/reload")
            #expect(reload.status == 200)
            #expect(h.store.snapshot.table.model(named: "other-8k")?.retired != nil)
        }
    }
}

@Suite struct KeyCheckTests {
    @Test func aKeyThatFailsTheStartCheckStartsOutRemovedWithItsReason() async throws {
        let config = Harness.config.replacingOccurrences(of: "    kind: openrouter\n", with: "    kind: openrouter\n    check_keys: true\n")
        try await withHarness(config: config, script: "keys: { \(Harness.key(3)): { fault: invalid_key } }") { h in
            let prober = KeyProber(store: h.store, upstream: h.upstream, clock: h.clock, logger: Logger(label: "test"), activity: h.gateway.activity)
            let removed = await prober.checkKeys()
            #expect(removed == ["openrouter#3"])
            #expect(h.keyState("openrouter#3") == "removed")
            #expect(h.keyState("openrouter#1") == "healthy")
            let stats = try await h.get("/admin/stats")
            #expect(!stats.body.contains(Harness.key(3)))
            for i in 0..<8 { #expect(try await h.post(chat("checked \(i)")).status == 200) }
            #expect(!h.upstreamRequests().contains { $0.key == "openrouter#3" })
        }
    }
}
