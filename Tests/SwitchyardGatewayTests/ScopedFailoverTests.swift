import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

/// Failover with one key per provider and several models on it: each fault blames its own scope, a transient
/// fault retries the model once, a short Retry-After is waited out, and a fallen model comes back soon.
@Suite struct ScopedFailoverTests {
    static let a = "meta-llama/llama-3.1-8b-instruct:free"
    static let b = "google/gemma-2-9b-it:free"

    static let retry = """
        retry:
          max_attempts: 6
          backoff: [0s, 5ms, 10ms]
          first_token_timeout: \(Harness.streamTimeout)
          stream_idle_timeout: \(Harness.streamTimeout)
          attempt_timeout: 3s
          request_deadline: 8s
        """

    /// One provider, one key, the gateway's default health settings; `a-model` takes a prefill, `b-model` does not.
    static let oneKey = """
        providers:
          solo:
            base_url: BASE
            kind: openrouter
            keys:
              - { env: K1, account: a }
        models:
          a-model: { provider: solo, upstream: "\(a)", context: 8192, speed: 5, quality: 3, prefill: true }
          b-model: { provider: solo, upstream: "\(b)", context: 8192, speed: 4, quality: 3 }
        routes:
          pair:  { prefer: listed, models: [a-model, b-model] }
          alone: { prefer: listed, models: [a-model] }
        \(retry)
        """

    /// Two keys of one account (`org`) or of two accounts (`a`, `b`), for account-wide scopes.
    static func twoKeys(kind: String, accounts: (String, String)) -> String {
        """
        providers:
          duo:
            base_url: BASE
            kind: \(kind)
            keys:
              - { env: K1, account: \(accounts.0) }
              - { env: K2, account: \(accounts.1) }
        models:
          a-model: { provider: duo, upstream: "\(a)", context: 8192, speed: 5, quality: 3 }
          b-model: { provider: duo, upstream: "\(b)", context: 8192, speed: 4, quality: 3 }
        routes:
          pair: { prefer: listed, models: [a-model, b-model] }
        \(retry)
        """
    }

    func requests(_ h: Harness, model: String) -> [FakeLogEntry] { h.fake.log().requests.filter { $0.model == model } }

    @Test(arguments: ["rate_limit", "rate_limit_no_retry_after"])
    func oneModelsRateLimitLeavesTheKeysOtherModelServing(fault: String) async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: \#(fault), retry_after: 2, times: 1 } }"#
        try await withHarness(config: Self.oneKey, script: script) { h in
            let first = try await h.post(chat("limited", model: "pair"))
            #expect(first.status == 200)
            #expect(first.header("x-switchyard-model") == "b-model", "answered by B at once")
            #expect(first.header("x-switchyard-attempts") == "2")
            for i in 0..<6 {
                let viaRoute = try await h.post(chat("meanwhile \(i)", model: "pair"))
                #expect(viaRoute.status == 200 && viaRoute.header("x-switchyard-model") == "b-model")
                let direct = try await h.post(chat("direct \(i)", model: "b-model"))
                #expect(direct.status == 200)
            }
            #expect(requests(h, model: Self.a).count == 1, "A receives nothing while it is limited")
            #expect(h.keyState("solo#1") == "healthy", "the key is not blamed for one model's limit")
            let stats = try await h.get("/admin/stats").body
            #expect(stats.contains(#""subject":"solo#1 × a-model","state":"rate_limited","scope":"key_model""#))
            // Retry-After, or rate_limit_cooldown (60 s) without it: then A serves again.
            h.clock.advance(by: fault == "rate_limit" ? .seconds(2) : .seconds(60))
            let back = try await h.post(chat("back", model: "pair"))
            #expect(back.status == 200 && back.header("x-switchyard-model") == "a-model")
        }
    }

    @Test func aLoneModelWaitsOutAShortRetryAfter() async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: rate_limit, retry_after: 2, times: 1 } }"#
        try await withHarness(config: Self.oneKey, script: script) { h in
            let started = Date()
            let reply = try await h.post(chat("wait for me", model: "alone"))
            let elapsed = Date().timeIntervalSince(started)
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.header("x-switchyard-attempts") == "2")
            // The lower bound is the point; the upper one only says it did not hang (a loaded CI machine is slow).
            #expect(elapsed >= 1.9 && elapsed < 7 * timingScale, "waited about 2 s: \(elapsed)")
            let sent = requests(h, model: Self.a)
            #expect(sent.count == 2)
            if sent.count == 2 { #expect(sent[1].timeMs - sent[0].timeMs >= 1900, "none inside the window") }
        }
    }

    @Test func aRetryAfterLongerThanMaxWaitIsA503() async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: rate_limit, retry_after: 30, times: 1 } }"#
        try await withHarness(config: Self.oneKey, script: script) { h in
            let started = Date()
            let reply = try await h.post(chat("too long", model: "alone"))
            #expect(reply.status == 503)
            #expect((25...30).contains(Int(reply.header("retry-after") ?? "") ?? 0))
            // Waiting would take 30 s (or at least max_wait, 5 s): anything well under that is no wait.
            #expect(Date().timeIntervalSince(started) < 4.5 * timingScale, "no wait past retry.max_wait")
            #expect(requests(h, model: Self.a).count == 1)
        }
    }

    @Test func aGroqModelLimitSkipsTheModelOnEveryKeyOfTheAccount() async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: rate_limit_model, retry_after: 30 } }"#
        try await withHarness(config: Self.twoKeys(kind: "groq", accounts: ("org", "org")), script: script) { h in
            for i in 0..<8 {
                let reply = try await h.post(chat("groq \(i)", model: "pair"))
                #expect(reply.status == 200 && reply.header("x-switchyard-model") == "b-model")
            }
            #expect(requests(h, model: Self.a).count == 1, "one 429, then A is skipped on both keys")
            #expect(Set(requests(h, model: Self.b).map(\.key)).count == 2, "B serves on both keys")
            try h.fake.updateBehavior("models_behavior: {}")
            h.clock.advance(by: .seconds(30))
            let back = try await h.post(chat("groq back", model: "pair"))
            #expect(back.header("x-switchyard-model") == "a-model")
        }
    }

    @Test func anOpenRouterFreeModelLimitSkipsTheAccountAndAnotherServes() async throws {
        let script = "keys: { \(Harness.key(1)): { fault: free_models_per_min, retry_after: 30 } }"
        try await withHarness(config: Self.twoKeys(kind: "openrouter", accounts: ("a", "b")), script: script) { h in
            for i in 0..<8 {
                let reply = try await h.post(chat("free \(i)", model: "pair"))
                #expect(reply.status == 200 && reply.header("x-switchyard-key") == "duo#2", "\(reply.body)")
            }
            #expect(h.fake.log().perKey["openrouter#1"] == 1, "every free model of account a is skipped after one 429")
            let stats = try await h.get("/admin/stats").body
            #expect(stats.contains(#""subject":"duo/a (free models)","state":"rate_limited","scope":"account""#))
        }
    }

    @Test func aSingle500IsRetriedOnTheSameModel() async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: error_500, times: 1 } }"#
        // One key: the same key once more, at once.
        try await withHarness(config: Self.oneKey, script: script) { h in
            let reply = try await h.post(chat("retry me", model: "pair"))
            #expect(reply.status == 200 && reply.header("x-switchyard-model") == "a-model")
            #expect(reply.header("x-switchyard-attempts") == "2")
            #expect(requests(h, model: Self.b).isEmpty)
        }
        // Two keys: A on the other key.
        try await withHarness(config: Self.twoKeys(kind: "openrouter", accounts: ("a", "b")), script: script) { h in
            let reply = try await h.post(chat("retry me", model: "pair"))
            #expect(reply.status == 200 && reply.header("x-switchyard-model") == "a-model")
            let keys = requests(h, model: Self.a).map(\.key)
            #expect(keys.count == 2 && Set(keys).count == 2)
        }
    }

    @Test func aCutStreamIsContinuedByTheModelThatWasCut() async throws {
        let script = #"models_behavior: { "\#(Self.a)": { fault: cut, after_tokens: 5, times: 1 } }"#
        try await withHarness(config: Self.oneKey, script: script) { h in
            let reply = try await h.post(chat("continue on a", model: "pair", stream: true))
            #expect(reply.status == 200)
            let stream = ParsedStream(reply.events)
            #expect(stream.errorEvent == nil)
            #expect(stream.content == expectedAnswer("continue on a"))
            #expect(stream.done)
            #expect(requests(h, model: Self.a).count == 2)
            #expect(requests(h, model: Self.b).isEmpty, "B, which takes no prefill, gets nothing")
            #expect(h.fake.log().perAction["prefill"] == 1)
        }
    }

    @Test func aFallenModelIsProbedSoonAndServesAgain() async throws {
        let script = #"models_behavior: { "\#(Self.a)": error_503 }"#
        try await withHarness(config: Self.oneKey, script: script) { h in
            var opened: Int?
            var servedAgain: Int?
            var trials: [Int] = []
            for second in 0..<25 {
                if second == 6 { try h.fake.updateBehavior("models_behavior: {}") }
                let before = requests(h, model: Self.a).count
                let reply = try await h.post(chat("second \(second)", model: "pair"))
                #expect(reply.status == 200, "second \(second): \(reply.body)")
                let sentToA = requests(h, model: Self.a).count - before
                let state = h.store.snapshot.health.modelState(0, at: h.clock.now()).state
                if opened == nil, case .outage = state { opened = second }
                if let opened, second > opened, sentToA > 0 {
                    #expect(sentToA == 1, "one trial request at a time")
                    trials.append(second)
                }
                if second >= 6, servedAgain == nil, reply.header("x-switchyard-model") == "a-model" { servedAgain = second }
                h.clock.advance(by: .seconds(1))
            }
            #expect(opened != nil)
            #expect((servedAgain ?? 99) <= 6 + 15, "A serves again within 15 s of its recovery: \(String(describing: servedAgain))")
            #expect(h.keyState("solo#1") == "healthy", "one model's outage never cools the provider's only key")
            #expect(!trials.isEmpty)
        }
    }
}
