import Foundation
import SwitchyardGateway
import Testing

/// The response cache's shared tier: an answer stored through one replica is a hit through the others, with
/// the same rules as the memory tier. Run alone with `swift test --filter SharedCacheTests`.
@Suite(.serialized) struct SharedCacheTests {
    @Test func anAnswerCachedThroughOneReplicaIsAHitThroughTheOthers() async throws {
        try await PostgresCluster.with { cluster in
            try await withReplicas(["replica-a", "replica-b", "replica-c"], cluster: cluster) { replicas in
                let (a, b, c) = (replicas[0], replicas[1], replicas[2])
                let first = try await a.post(chat("cache me once"))
                #expect(first.header("x-switchyard-cache") == "miss")
                await a.persister?.flush()
                let onB = try await b.post(chat("cache me once"))
                #expect(onB.status == 200)
                #expect(onB.header("x-switchyard-cache") == "hit")
                #expect(onB.header("x-switchyard-attempts") == "0")
                #expect(onB.header("x-switchyard-model") == first.header("x-switchyard-model"))
                #expect(onB.body == first.body, "the stored answer, byte for byte")
                let streamed = try await c.post(chat("cache me once", stream: true))
                #expect(streamed.header("x-switchyard-cache") == "hit", "replayed as a stream")
                #expect(streamed.events.last == "[DONE]")
                #expect(b.upstreamRequests().isEmpty && c.upstreamRequests().isEmpty, "B and C never asked upstream")
                // Kept in B's memory tier now: a second hit needs no round trip.
                #expect(try await b.post(chat("cache me once")).header("x-switchyard-cache") == "hit")
                let state = try await sharedState(b)
                let counts = try #require(state["cache"] as? [String: Any])
                #expect(counts["hits"] as? Int == 1, "\(counts)")
                // A different request is a miss everywhere; a no-cache request does not look.
                #expect(try await c.post(chat("something else")).header("x-switchyard-cache") == "miss")
                let bypass = try await c.post(chat("cache me once"), headers: [("cache-control", "no-cache")])
                #expect(bypass.header("x-switchyard-cache") != "hit")
            }
        }
    }

    @Test func anIncompleteAnswerIsNotSharedAndClearEmptiesTheSharedTier() async throws {
        try await PostgresCluster.with { cluster in
            try await withReplicas(["replica-a", "replica-b"], cluster: cluster) { replicas in
                let (a, b) = (replicas[0], replicas[1])
                // max_tokens cuts the answer (`length`): never stored, so never shared.
                let cut = try await a.post(chat("cut short", maxTokens: 2))
                #expect(cut.status == 200 && cut.header("x-switchyard-cache") == "miss")
                #expect(try await a.post(chat("kept whole")).status == 200)
                await a.persister?.flush()
                #expect(try await b.post(chat("cut short", maxTokens: 2)).header("x-switchyard-cache") == "miss")
                #expect(try await a.post("", path: "/admin/cache/clear").status == 200)
                #expect(try await b.post(chat("kept whole")).header("x-switchyard-cache") == "miss", "cleared in the shared tier too")
            }
        }
    }
}
