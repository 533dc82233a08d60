import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct CacheTests {
    @Test func aHitFollowsAMissWithoutAnUpstreamCall() async throws {
        try await withHarness { h in
            let first = try await h.post(chat("cache me"))
            #expect(first.header("x-switchyard-cache") == "miss")
            let second = try await h.post(chat("cache me"))
            #expect(second.status == 200)
            #expect(second.header("x-switchyard-cache") == "hit")
            #expect(second.header("x-switchyard-attempts") == "0")
            #expect(second.header("x-switchyard-model") == first.header("x-switchyard-model"))
            #expect(second.body == first.body)
            #expect(h.fake.log().total == 1)
        }
    }

    @Test func keyOrderDoesNotMatterButParametersDo() async throws {
        try await withHarness { h in
            _ = try await h.post(#"{"model":"auto","temperature":0.5,"messages":[{"role":"user","content":"order"}]}"#)
            let reordered = try await h.post(#"{ "messages": [ {"content":"order", "role":"user"} ], "model": "auto", "temperature": 0.5 }"#)
            #expect(reordered.header("x-switchyard-cache") == "hit")
            let changed = try await h.post(#"{"model":"auto","temperature":0.9,"messages":[{"role":"user","content":"order"}]}"#)
            #expect(changed.header("x-switchyard-cache") == "miss")
            #expect(h.fake.log().total == 2)
        }
    }

    @Test func clientsNeverSeeEachOthersAnswers() async throws {
        try await withHarness(tokens: ["app-a", "app-b"]) { h in
            _ = try await h.post(chat("private"), headers: [("authorization", "Bearer app-a")])
            let other = try await h.post(chat("private"), headers: [("authorization", "Bearer app-b")])
            #expect(other.header("x-switchyard-cache") == "miss")
            let same = try await h.post(chat("private"), headers: [("authorization", "Bearer app-a")])
            #expect(same.header("x-switchyard-cache") == "hit")
            let denied = try await h.post(chat("private"))
            #expect(denied.status == 401)
        }
    }

    @Test func lengthCutAndFailedAnswersAreNotStored() async throws {
        try await withHarness { h in
            _ = try await h.post(chat("short", maxTokens: 3))
            let again = try await h.post(chat("short", maxTokens: 3))
            #expect(again.header("x-switchyard-cache") == "miss")
            try h.fake.updateBehavior("default: error_500")
            _ = try await h.post(chat("failing"))
            try h.fake.updateBehavior("default: {}")
            h.clock.advance(by: .seconds(61))  // past the models' outage cooldown
            let after = try await h.post(chat("failing"))
            #expect(after.status == 200)
            #expect(after.header("x-switchyard-cache") == "miss")
        }
    }

    @Test func aStreamIsReplayedFromTheCacheAndAStreamFillsItForJSON() async throws {
        try await withHarness { h in
            _ = try await h.post(chat("replay me"))
            let replay = try await h.post(chat("replay me", stream: true))
            #expect(replay.header("x-switchyard-cache") == "hit")
            #expect(replay.header("content-type") == "text/event-stream")
            let parsed = ParsedStream(replay.events)
            #expect(parsed.invalidEvents.isEmpty)
            #expect(parsed.content == expectedAnswer("replay me"))
            #expect(parsed.finishReason == "stop")
            #expect(parsed.done)

            let streamed = try await h.post(chat("streamed first", stream: true))
            #expect(streamed.header("x-switchyard-cache") == "miss")
            let json = try await h.post(chat("streamed first"))
            #expect(json.header("x-switchyard-cache") == "hit")
            #expect(try ChatCompletion.decode(json.body).choices[0].message.content == expectedAnswer("streamed first"))
            #expect(h.fake.log().total == 2)
        }
    }

    @Test func cacheControlAndRouteSwitches() async throws {
        let config = Harness.config.replacingOccurrences(of: "noprefill: { prefer: listed, models: [plain] }", with: "noprefill: { prefer: listed, models: [plain], cache: false }")
        try await withHarness(config: config) { h in
            _ = try await h.post(chat("cc"))
            let noCache = try await h.post(chat("cc"), headers: [("cache-control", "no-cache")])
            #expect(noCache.header("x-switchyard-cache") == "miss")
            let noStore = try await h.post(chat("cc-store"), headers: [("cache-control", "no-store")])
            #expect(noStore.header("x-switchyard-cache") == "bypass")
            let notStored = try await h.post(chat("cc-store"))
            #expect(notStored.header("x-switchyard-cache") == "miss")
            _ = try await h.post(chat("off", model: "noprefill"))
            let off = try await h.post(chat("off", model: "noprefill"))
            #expect(off.header("x-switchyard-cache") == "bypass")
            // cc, no-cache, no-store, cc-store, off twice. The fake logs a request just after answering it: wait for the last.
            #expect(try await eventually(1) { h.fake.log().total == 6 }, "\(h.fake.log().total)")
        }
    }

    @Test func fiftyIdenticalRequestsInFlightMakeOneUpstreamCall() async throws {
        try await withHarness(script: "default: { latency: 300ms }") { h in
            let replies = try await withThrowingTaskGroup(of: Harness.Reply.self) { group in
                for _ in 0..<50 { group.addTask { try await h.post(chat("together")) } }
                var all: [Harness.Reply] = []
                for try await reply in group { all.append(reply) }
                return all
            }
            #expect(replies.allSatisfy { $0.status == 200 })
            #expect(Set(replies.map(\.body)).count == 1)
            #expect(h.fake.log().total == 1)
            #expect(replies.filter { $0.header("x-switchyard-cache") == "miss" }.count == 1)
        }
    }

    @Test func followersTryOnTheirOwnWhenTheLeaderFails() async throws {
        let key = Harness.key(1)
        // Whichever key leads fails once on every key of the first model; followers then go upstream themselves.
        try await withHarness(script: "default: { latency: 200ms }\nkeys: { \(key): { fault: error_500, times: 1 } }") { h in
            let replies = try await withThrowingTaskGroup(of: Harness.Reply.self) { group in
                for _ in 0..<5 { group.addTask { try await h.post(chat("leader fails", maxTokens: 3)) } }
                var all: [Harness.Reply] = []
                for try await reply in group { all.append(reply) }
                return all
            }
            #expect(replies.allSatisfy { $0.status == 200 })
            // A length-cut answer cannot be shared: every request went upstream on its own.
            #expect(h.fake.log().total >= 5)
        }
    }

    @Test func theCacheScenarioHitRateMatchesTheDuplicateRatio() async throws {
        try await withHarness { h in
            var prompts = (0..<100).map { "unique \($0)" }
            prompts += prompts
            var generator = SystemRandomNumberGenerator()
            prompts.shuffle(using: &generator)
            var seen = Set<String>()
            var expectedHits = 0
            var hits = 0
            for prompt in prompts {
                if seen.contains(prompt) { expectedHits += 1 } else { seen.insert(prompt) }
                if try await h.post(chat(prompt)).header("x-switchyard-cache") == "hit" { hits += 1 }
            }
            let expected = Double(expectedHits) / Double(prompts.count)
            let measured = Double(hits) / Double(prompts.count)
            #expect(abs(measured - expected) <= 0.02, "measured \(measured), expected \(expected)")
            #expect(h.gateway.cache.stats.hits == hits)
            // Upstream actions in the message: a sanitizer run once saw 101 here; the next one says why.
            #expect(h.fake.log().total == 100, "\(h.fake.log().perAction)")
        }
    }

    @Test func adminCanClearTheCache() async throws {
        try await withHarness { h in
            _ = try await h.post(chat("clear me"))
            let cleared = try await h.post("", path: "/admin/cache/clear")
            #expect(cleared.status == 200)
            #expect(cleared.body == #"{"cleared":1}"#)
            #expect(try await h.post(chat("clear me")).header("x-switchyard-cache") == "miss")
        }
    }
}
