import Foundation
import Testing
@testable import SwitchyardCore

struct CanonicalRequestTests {
    func key(_ body: String, scope: String = "local", defaults: [String: String] = [:]) -> CacheKey? {
        Array(body.utf8).withUnsafeBytes { CanonicalRequest.key(body: $0, scope: scope, defaults: defaults) }
    }

    @Test func keyOrderWhitespaceAndEscapesDoNotMatter() {
        let a = key(#"{"model":"auto","messages":[{"role":"user","content":"é hi"}],"temperature":0.2}"#)
        let b = key(#"{ "temperature" : 0.2 , "messages" : [ { "content" : "\u00e9 hi", "role" : "user" } ], "model" : "auto" }"#)
        #expect(a != nil && a == b)
    }

    @Test func streamUserAndStreamOptionsDoNotMatter() {
        let a = key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#)
        let b = key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":true,"user":"u1","stream_options":{"include_usage":true}}"#)
        #expect(a == b)
    }

    @Test(arguments: ["temperature", "top_p", "max_tokens", "seed", "n", "presence_penalty", "frequency_penalty"])
    func everyAnswerChangingParameterChangesTheKey(name: String) {
        let base = key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"\#(name)":1}"#)
        let changed = key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"\#(name)":2}"#)
        #expect(base != changed)
    }

    @Test func messagesRouteAndScopeChangeTheKey() {
        let base = key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#)
        #expect(base != key(#"{"model":"auto","messages":[{"role":"user","content":"hi!"}]}"#))
        #expect(base != key(#"{"model":"quality","messages":[{"role":"user","content":"hi"}]}"#))
        #expect(base != key(#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#, scope: "client:other"))
    }

    @Test func routeDefaultsFoldIntoTheKey() {
        let explicit = key(#"{"model":"quality","messages":[{"role":"user","content":"hi"}],"temperature":0.3}"#)
        let defaulted = key(#"{"model":"quality","messages":[{"role":"user","content":"hi"}]}"#, defaults: ["temperature": "0.3"])
        let overridden = key(#"{"model":"quality","messages":[{"role":"user","content":"hi"}],"temperature":1}"#, defaults: ["temperature": "0.3"])
        #expect(explicit == defaulted)
        #expect(overridden != defaulted)
    }

    /// The exact bytes hashed: keys sorted at every depth, strings re-escaped only where they held escapes,
    /// ignored fields out, defaults in. Pinned, so that a faster canonicaliser keeps every key it made before.
    @Test func theCanonicalFormIsPinned() {
        func canonical(_ body: String, defaults: [String: String] = [:]) -> String? {
            Array(body.utf8).withUnsafeBytes { CanonicalRequest.canonical(body: $0, defaults: defaults) }.map { String(decoding: $0, as: UTF8.self) }
        }
        let body = #"{"model":"auto","messages":[{"role":"user","content":"é hi","name":"a\"b"}],"temperature":0.2,"stream":true,"#
            + #""metadata":{"z":1,"a":[true,null,{"y":"\u0041","x":2}]},"a\u0062":[]}"#
        #expect(
            canonical(body, defaults: ["temperature": "0.5", "top_p": " 1 "])
                == #"{"ab":[],"messages":[{"content":"é hi","name":"a\"b","role":"user"}],"metadata":{"a":[true,null,{"x":2,"y":"A"}],"z":1},"#
                + #""model":"auto","temperature":0.2,"top_p":1}"#)
        #expect(canonical(#"{ }"#) == "{}")
        #expect(canonical(#"{"b":{},"a":[{}]}"#) == #"{"a":[{}],"b":{}}"#)
        // Names in Unicode order, a repeated name kept in place, names whose decoded text needs escapes,
        // an escaped name deep in an array, and a default that is not JSON left out.
        #expect(canonical(#"{"zé":1,"é":2,"z":3,"Z":4,"_":5}"#) == #"{"Z":4,"_":5,"z":3,"zé":1,"é":2}"#)
        #expect(canonical(#"{"b":2,"a":1,"a":3}"#) == #"{"a":1,"a":3,"b":2}"#)
        #expect(canonical(#"{"q\"":1,"n\n":2,"\u00e9":3,"e":4}"#) == #"{"e":4,"n\n":2,"q\"":1,"é":3}"#)
        #expect(canonical(#"{"m":[{"y":1,"x":{"b\u0061":2,"a":3}}]}"#, defaults: ["seed": "nope", "n": "2"]) == #"{"m":[{"x":{"a":3,"ba":2},"y":1}],"n":2}"#)
    }

    @Test func nonObjectsHaveNoKey() {
        #expect(key("[]") == nil)
        #expect(key("{broken") == nil)
    }
}

struct ResponseCacheTests {
    let start = Fixtures.start

    func answer(_ content: String, finish: String = "stop") -> CachedAnswer {
        CachedAnswer(id: "gen-1", created: 1, upstreamModel: "m", modelName: "m", keyLabel: "p#1", content: content, finishReason: finish, usageJSON: nil, body: nil)
    }

    func key(_ n: Int) -> CacheKey {
        var d = SIMD32<UInt8>()
        d[0] = UInt8(n)
        return CacheKey(digest: d)
    }

    @Test func hitAfterStoreAndExpiryAfterTTL() {
        let cache = ResponseCache(limits: .init(ttl: .seconds(300), maxEntries: 10, maxBytes: 1 << 20))
        #expect(cache.lookup(key(1), at: start) == nil)
        cache.store(answer("a"), for: key(1), at: start)
        #expect(cache.lookup(key(1), at: start + .seconds(299))?.content == "a")
        #expect(cache.lookup(key(1), at: start + .seconds(300)) == nil)
        let stats = cache.stats
        #expect(stats.hits == 1 && stats.expirations == 1 && stats.entries == 0)
    }

    @Test func theByteBoundEvictsTheLeastRecentlyUsed() {
        let one = answer(String(repeating: "x", count: 1000))
        let cache = ResponseCache(limits: .init(ttl: .seconds(300), maxEntries: 100, maxBytes: one.cost * 3))
        for n in 1...3 { cache.store(answer(String(repeating: "x", count: 1000)), for: key(n), at: start) }
        _ = cache.lookup(key(1), at: start)  // 1 is now the most recently used; 2 is the least
        cache.store(one, for: key(4), at: start)
        #expect(cache.lookup(key(2), at: start) == nil)
        #expect(cache.lookup(key(1), at: start) != nil)
        #expect(cache.lookup(key(3), at: start) != nil)
        #expect(cache.lookup(key(4), at: start) != nil)
        #expect(cache.stats.evictions == 1)
        #expect(cache.stats.bytes <= one.cost * 3)
    }

    @Test func theEntryBoundEvictsToo() {
        let cache = ResponseCache(limits: .init(ttl: .seconds(300), maxEntries: 2, maxBytes: 1 << 20))
        for n in 1...5 { cache.store(answer("a\(n)"), for: key(n), at: start) }
        #expect(cache.stats.entries == 2)
        #expect(cache.lookup(key(5), at: start) != nil && cache.lookup(key(4), at: start) != nil)
    }

    @Test func expiredEntriesAreCleanedUpAsNewOnesArrive() {
        let cache = ResponseCache(limits: .init(ttl: .seconds(10), maxEntries: 100, maxBytes: 1 << 20))
        for n in 1...4 { cache.store(answer("old"), for: key(n), at: start) }
        let later = start + .seconds(11)
        cache.store(answer("new"), for: key(10), at: later)
        cache.store(answer("new"), for: key(11), at: later)
        #expect(cache.stats.entries == 2)
        #expect(cache.stats.expirations == 4)
    }

    @Test func clearEmptiesButKeepsCounters() {
        let cache = ResponseCache(limits: .init(ttl: .seconds(10), maxEntries: 100, maxBytes: 1 << 20))
        cache.store(answer("a"), for: key(1), at: start)
        _ = cache.lookup(key(1), at: start)
        #expect(cache.clear() == 1)
        #expect(cache.lookup(key(1), at: start) == nil)
        #expect(cache.stats.hits == 1 && cache.stats.entries == 0 && cache.stats.bytes == 0)
    }
}

struct CachedAnswerTests {
    func completion(finish: String, message: String = #"{"role":"assistant","content":"Hi there"}"#, extra: String = "") -> [UInt8] {
        Array(#"{"id":"gen-7","object":"chat.completion","created":1700000000,"model":"vendor/m","choices":[{"index":0,"message":\#(message),"finish_reason":"\#(finish)"}\#(extra)],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#.utf8)
    }

    @Test func onlyCompleteAnswersAreKept() {
        #expect(CachedAnswer.fromCompletion(body: completion(finish: "stop"), modelName: "m", keyLabel: "k")?.content == "Hi there")
        #expect(CachedAnswer.fromCompletion(body: completion(finish: "length"), modelName: "m", keyLabel: "k") == nil)
        #expect(CachedAnswer.fromCompletion(body: completion(finish: "error"), modelName: "m", keyLabel: "k") == nil)
        #expect(CachedAnswer.fromCompletion(body: Array("not json".utf8), modelName: "m", keyLabel: "k") == nil)
    }

    @Test func toolCallAnswersAreKeptButNotReplayedAsStreams() {
        let message = #"{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}"#
        let stored = CachedAnswer.fromCompletion(body: completion(finish: "tool_calls", message: message), modelName: "m", keyLabel: "k")
        #expect(stored != nil)
        #expect(stored?.replayable == false)
    }

    @Test func aNonStreamingAnswerIsServedByteForByte() {
        let body = completion(finish: "stop")
        #expect(CachedAnswer.fromCompletion(body: body, modelName: "m", keyLabel: "k")?.completionJSON == body)
    }

    /// A stored answer keeps its body and reads its parts from it when asked: escapes decoded, usage as written.
    @Test func aStoredAnswersPartsAreReadFromItsBody() throws {
        let body = Array(
            #"{"id":"gen-\u0038","created":1700000001,"model":"vendor/m","choices":[{"message":{"content":"two\nlines, \"quoted\""},"#
                .utf8) + Array(#""finish_reason":"stop"}],"usage": {"total_tokens":5} }"#.utf8)
        let stored = try #require(CachedAnswer.fromCompletion(body: body, modelName: "m", keyLabel: "k"))
        #expect(stored.id == "gen-8")
        #expect(stored.created == 1_700_000_001)
        #expect(stored.upstreamModel == "vendor/m")
        #expect(stored.content == "two\nlines, \"quoted\"")
        #expect(stored.finishReason == "stop")
        #expect(stored.usageJSON == #"{"total_tokens":5}"#)
        #expect(stored.completionJSON == body)
        let bare = try #require(CachedAnswer.fromCompletion(body: completion(finish: "stop", message: #"{"content":null}"#), modelName: "m", keyLabel: "k"))
        #expect(bare.content == "")
    }

    @Test func replayCarriesContentFinishUsageAndDone() throws {
        let stored = try #require(CachedAnswer.fromCompletion(body: completion(finish: "stop"), modelName: "m", keyLabel: "k"))
        let text = String(decoding: stored.sseEvents, as: UTF8.self)
        let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { String($0.dropFirst(6)) }
        #expect(events.last == "[DONE]")
        for event in events.dropLast() { #expect(StreamChunkScan.scan(Array(event.utf8)) != nil) }
        let chunks = events.dropLast().compactMap { StreamChunkScan.scan(Array($0.utf8)) }
        #expect(chunks.map(\.content).joined() == "Hi there")
        #expect(chunks.contains { $0.finishReason == "stop" })
        #expect(chunks.contains { $0.hasUsage })
    }

    @Test func cachePolicyFollowsCacheControlAndSwitches() {
        #expect(CachePolicy.decide(cacheControl: nil, routeEnabled: true, cacheEnabled: true) == .normal)
        #expect(CachePolicy.decide(cacheControl: "no-cache", routeEnabled: true, cacheEnabled: true) == CachePolicy(lookup: false, store: true))
        #expect(CachePolicy.decide(cacheControl: "max-age=0, no-store", routeEnabled: true, cacheEnabled: true) == .bypass)
        #expect(CachePolicy.decide(cacheControl: nil, routeEnabled: false, cacheEnabled: true) == .bypass)
        #expect(CachePolicy.decide(cacheControl: nil, routeEnabled: true, cacheEnabled: false) == .bypass)
    }
}
