import FakeUpstream
import Foundation
import Logging
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct FailoverTests {
    @Test func aKeyAnswering500IsDisabledIsolatedAndComesBackAfterAProbe() async throws {
        let bad = Harness.key(3)
        try await withHarness(script: "keys: { \(bad): error_500 }") { h in
            // Zero client-visible errors while the bad key fails.
            for i in 0..<60 {
                let reply = try await h.post(chat("request \(i)"))
                #expect(reply.status == 200, "request \(i): \(reply.body)")
                _ = try ChatCompletion.decode(reply.body)
            }
            #expect(h.keyState("openrouter#3") == "disabled")
            let failures = h.fake.log().perKey["openrouter#3"] ?? 0
            #expect(failures >= 10, "disabled only after min_requests: \(failures)")

            // During the disable window the key gets no traffic.
            h.clock.advance(by: .seconds(299))
            for i in 0..<20 { let status = try await h.post(chat("window \(i)")).status; #expect(status == 200) }
            #expect(h.fake.log().perKey["openrouter#3"] == failures)

            // The key heals upstream; after the window one trial request brings it back.
            try h.fake.updateBehavior("keys: {}")
            h.clock.advance(by: .seconds(1))
            for i in 0..<8 { let status = try await h.post(chat("after \(i)")).status; #expect(status == 200) }
            #expect(h.keyState("openrouter#3") == "healthy")
            #expect((h.fake.log().perKey["openrouter#3"] ?? 0) >= failures + 2)
        }
    }

    @Test func aRetryAfterKeepsTheKeyOutForThatLong() async throws {
        let limited = Harness.key(2)
        try await withHarness(script: "keys: { \(limited): { fault: rate_limit, retry_after: 2, times: 1 } }") { h in
            for i in 0..<4 { let status = try await h.post(chat("warm \(i)")).status; #expect(status == 200) }
            let seen = h.fake.log().perKey["openrouter#2"] ?? 0
            #expect(h.fake.log().perAction["rate_limit"] == 1)
            // The 429 named no wider scope: only this model on this key waits, the key serves its other models.
            #expect(h.keyState("openrouter#2") == "healthy")
            let holds = h.store.snapshot.health.rateLimitHolds(at: h.clock.now())
            #expect(holds.map(\.name) == ["openrouter#2 × fast-8k"])
            h.clock.advance(by: .milliseconds(1900))
            for i in 0..<12 { let status = try await h.post(chat("limited \(i)")).status; #expect(status == 200) }
            #expect(h.fake.log().perKey["openrouter#2"] == seen)
            h.clock.advance(by: .milliseconds(100))
            for i in 0..<8 { let status = try await h.post(chat("back \(i)")).status; #expect(status == 200) }
            #expect((h.fake.log().perKey["openrouter#2"] ?? 0) > seen)
        }
    }

    @Test func aModelOutageMovesTrafficAndDisablesNoKey() async throws {
        try await withHarness(script: #"models_behavior: { "meta-llama/llama-3.1-8b-instruct:free": error_503 }"#) { h in
            for i in 0..<40 {
                let reply = try await h.post(chat("outage \(i)"))
                #expect(reply.status == 200)
                #expect(reply.header("x-switchyard-model") == "other-8k")
            }
            for n in 1...4 { #expect(h.keyState("openrouter#\(n)") == "healthy") }
            let snapshot = h.store.snapshot
            #expect(snapshot.health.modelState(snapshot.table.model(named: "fast-8k")!.id, at: h.clock.now()).state.name == "outage")
            // Once set aside, the failing model is not asked again during its cooldown.
            #expect((h.fake.log().perModel["meta-llama/llama-3.1-8b-instruct:free"] ?? 0) <= 3)
        }
    }

    @Test func aLongPromptGoesStraightToTheLongContextModel() async throws {
        try await withHarness { h in
            let long = String(repeating: "word ", count: 8000)  // ~13K tokens by the estimate, ~10K by the fake's count
            let reply = try await h.post(chat(long))
            #expect(reply.status == 200)
            #expect(reply.header("x-switchyard-model") == "long")
            #expect(reply.header("x-switchyard-attempts") == "1")
            #expect(h.fake.log().perAction["context_length_exceeded"] == nil)
        }
    }

    @Test func aContextErrorMovesToALargerModelAndBlamesNoKey() async throws {
        // The fake's catalog says the 8K models are smaller than routes.yaml claims.
        let script = #"models: { "meta-llama/llama-3.1-8b-instruct:free": 500, "google/gemma-2-9b-it:free": 500, "microsoft/phi-3-mini-128k-instruct:free": 128000 }"#
        try await withHarness(script: script) { h in
            let reply = try await h.post(chat(String(repeating: "word ", count: 600)))
            #expect(reply.status == 200)
            #expect(reply.header("x-switchyard-model") == "long")
            #expect(reply.header("x-switchyard-attempts") == "3")
            #expect(h.fake.log().perAction["context_length_exceeded"] == 2)
            for n in 1...4 { #expect(h.keyState("openrouter#\(n)") == "healthy") }
            #expect(h.store.snapshot.health.keyHealth(0).window.failures == 0)
        }
    }

    @Test func everyCandidateFailingIsA502ListingAttemptsByLabel() async throws {
        try await withHarness(script: "default: error_500") { h in
            let reply = try await h.post(chat())
            #expect(reply.status == 502)
            let error = try #require((try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])?["error"] as? [String: Any])
            let message = try #require(error["message"] as? String)
            #expect(message.contains("openrouter#"))
            #expect(message.contains("500"))
            #expect(error["code"] as? String == "all_candidates_failed")
            #expect(reply.header("x-switchyard-attempts") == "6")
            for n in 1...4 { #expect(!reply.body.contains(Harness.key(n))) }
        }
    }

    @Test func nothingUsableIsA503WithRetryAfter() async throws {
        try await withHarness(script: "default: { fault: rate_limit, retry_after: 30 }") { h in
            _ = try await h.post(chat())
            let reply = try await h.post(chat())
            #expect(reply.status == 503)
            let retry = Int(reply.header("retry-after") ?? "") ?? 0
            #expect((25...30).contains(retry))
        }
    }

    @Test(arguments: [false, true])
    func aContentRefusalComesBackAfterOneAttempt(stream: Bool) async throws {
        try await withHarness(script: "default: content_policy") { h in
            let reply = try await h.post(chat(stream: stream))
            #expect(reply.status == 400)
            #expect(reply.body.contains("content policy"))
            #expect(reply.body.contains("content_policy_violation"))
            #expect(h.fake.log().total == 1)
        }
    }

    /// The walk stops where the retry policy says, on a later attempt as on the first: a refusal by the route's
    /// second model comes back as it is, and the third model never hears of the request.
    @Test(arguments: [false, true])
    func aContentRefusalAfterAFailoverComesBackAtOnce(stream: Bool) async throws {
        let script = #"models_behavior: { "meta-llama/llama-3.1-8b-instruct:free": model_gone, "google/gemma-2-9b-it:free": content_policy }"#
        try await withHarness(script: script) { h in
            let reply = try await h.post(chat("refused second", stream: stream))
            #expect(reply.status == 400, "\(reply.body)")
            #expect(reply.body.contains("content_policy_violation"))
            let log = h.fake.log()
            #expect(log.perModel["google/gemma-2-9b-it:free"] == 1)
            #expect(log.perModel["microsoft/phi-3-mini-128k-instruct:free"] == nil, "the walk went on past the refusal")
        }
    }

    /// `max_attempts` bounds the walk whichever attempt fails: with every model failing, exactly that many are made.
    @Test func maxAttemptsBoundsTheWalk() async throws {
        let config = Harness.config.replacingOccurrences(of: "max_attempts: 6", with: "max_attempts: 2")
        try await withHarness(config: config, script: "default: model_gone") { h in
            let reply = try await h.post(chat("every model gone"))
            #expect(reply.status >= 500, "\(reply.body)")
            #expect(reply.header("x-switchyard-attempts") == "2")
            #expect(h.fake.log().total == 2)
        }
    }

    @Test func invalidKeysAreRemovedAndTheirErrorsRedacted() async throws {
        let dead = Harness.key(1)
        try await withHarness(script: "keys: { \(dead): invalid_key }") { h in
            for i in 0..<8 {
                let reply = try await h.post(chat("k \(i)"))
                #expect(reply.status == 200)
                #expect(!reply.body.contains(dead))
            }
            #expect(h.keyState("openrouter#1") == "removed")
            #expect(h.fake.log().perKey["openrouter#1"] == 1)
        }
    }

    @Test func theDeadlineEndsEveryRequest() async throws {
        let config = Harness.config.replacingOccurrences(of: "request_deadline: 8s", with: "request_deadline: 1s")
        let logs = LogCapture()
        try await withHarness(config: config, script: "default: hang", logs: logs) { h in
            let started = Date()
            let reply = try await h.post(chat())
            #expect(reply.status == 504)
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed < 3 * timingScale, "the gateway's log:\n\(logs.text)\nthe fake's requests: \(h.fake.log().requests)")
        }
    }

    @Test func aFailedRouteCanAnswerWithItsLastResort() async throws {
        try await withHarness(script: "default: error_502") { h in
            let reply = try await h.post(chat(model: "polite"))
            #expect(reply.status == 200)
            #expect(reply.header("x-switchyard-last-resort") == "true")
            #expect(try ChatCompletion.decode(reply.body).choices[0].message.content == "Sorry, try again later.")
        }
    }
}

@Suite struct ContractTests {
    @Test func responsesCarryTheSwitchyardHeadersAndDecodeStrictly() async throws {
        try await withHarness { h in
            let reply = try await h.post(chat("contract"))
            #expect(reply.status == 200)
            #expect(reply.header("x-switchyard-route") == "auto")
            #expect(reply.header("x-switchyard-model") == "fast-8k")
            #expect(reply.header("x-switchyard-key")?.hasPrefix("openrouter#") == true)
            #expect(reply.header("x-switchyard-attempts") == "1")
            #expect(reply.header("x-switchyard-cache") != nil)
            let completion = try ChatCompletion.decode(reply.body)
            #expect(completion.model == "meta-llama/llama-3.1-8b-instruct:free")
            #expect(completion.choices[0].message.content == expectedAnswer("contract"))
            #expect(completion.usage?.completion_tokens == 16)
        }
    }

    @Test func aModelNameWorksAsARouteAndUnknownNamesAre404() async throws {
        try await withHarness { h in
            let direct = try await h.post(chat(model: "long"))
            #expect(direct.status == 200)
            #expect(direct.header("x-switchyard-model") == "long")
            let unknown = try await h.post(chat(model: "gpt-9"))
            #expect(unknown.status == 404)
            #expect(unknown.body.contains("model_not_found"))
            #expect(unknown.body.contains("auto"))
        }
    }

    @Test func badRequestsGetOpenAIErrors() async throws {
        try await withHarness { h in
            let notJSON = try await h.post("{nope")
            #expect(notJSON.status == 400)
            #expect(notJSON.body.contains("invalid_request_error"))
            let noMessages = try await h.post(#"{"model":"auto"}"#)
            #expect(noMessages.status == 400)
            #expect(noMessages.body.contains("'messages' is required"))
            let wrongType = try await h.post(chat(), headers: [("content-type", "text/plain")])
            #expect(wrongType.status == 415)
            // Paths and bodies the router itself refuses answer in the same shape.
            let unknown = try await h.get("/v1/nothing")
            #expect(unknown.status == 404)
            #expect(unknown.body.contains(#""code":"not_found""#))
            #expect(unknown.header("content-type") == "application/json")
            let tooBig = try await h.post(chat(String(repeating: "a", count: 5 << 20)))
            #expect(tooBig.status == 413)
            #expect(tooBig.body.contains("request_too_large"))
            #expect(h.fake.log().total == 0)
        }
    }

    @Test func modelsAndHealth() async throws {
        try await withHarness { h in
            let models = try await h.get("/v1/models")
            #expect(models.status == 200)
            let data = try #require((try JSONSerialization.jsonObject(with: Data(models.body.utf8)) as? [String: Any])?["data"] as? [[String: Any]])
            #expect(data.contains { $0["id"] as? String == "auto" && $0["type"] as? String == "route" })
            #expect(data.contains { $0["id"] as? String == "long" && $0["context_length"] as? Int == 128000 && $0["speed"] as? Int == 2 })
            let status = try await h.get("/healthz").status; #expect(status == 200)
        }
    }
}

@Suite struct ReprobeTests {
    @Test func aRemovedKeyIsReprobedInTheBackgroundAndComesBack() async throws {
        let dead = Harness.key(1)
        try await withHarness(script: "keys: { \(dead): invalid_key }") { h in
            for i in 0..<4 { _ = try await h.post(chat("r \(i)")) }
            #expect(h.keyState("openrouter#1") == "removed")
            var logger = Logger(label: "probe")
            logger.logLevel = .critical
            let prober = KeyProber(store: h.store, upstream: h.upstream, clock: h.clock, logger: logger, activity: h.gateway.activity)
            #expect(await prober.probeDueKeys() == 0, "not due before its re-probe time")
            // Still dead at the first re-probe: out again, for twice as long.
            h.clock.advance(by: .seconds(600))
            #expect(await prober.probeDueKeys() == 1)
            #expect(h.keyState("openrouter#1") == "removed")
            h.clock.advance(by: .seconds(600))
            #expect(await prober.probeDueKeys() == 0)
            // Fixed upstream: the next probe brings it back without a client request.
            try h.fake.updateBehavior("keys: {}")
            h.clock.advance(by: .seconds(600))
            #expect(await prober.probeDueKeys() == 1)
            #expect(h.keyState("openrouter#1") == "healthy")
            #expect(h.gateway.activity.totals.events.last?.to == "healthy", "probe results reach the dashboard's state changes")
        }
    }
}

@Suite struct LimitsTests {
    @Test func outOfRangeParametersAreRefusedBeforeAnyUpstream() async throws {
        try await withHarness { h in
            let zero = try await h.post(#"{"model":"auto","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#)
            #expect(zero.status == 400 && zero.body.contains("'max_tokens' must be between"))
            let many = try await h.post(#"{"model":"auto","n":1000,"messages":[{"role":"user","content":"x"}]}"#)
            #expect(many.status == 400 && many.body.contains("'n' must be between"))
            #expect(h.fake.log().total == 0)
        }
    }

    @Test func beyondMaxInFlightTheGatewayAnswers429AtOnce() async throws {
        let config = Harness.config.replacingOccurrences(of: "providers:", with: "server: { max_in_flight: 2 }\nproviders:")
        try await withHarness(config: config, script: "default: { latency: 400ms }") { h in
            let replies = try await withThrowingTaskGroup(of: Harness.Reply.self) { group in
                for i in 0..<6 { group.addTask { try await h.post(chat("busy \(i)")) } }
                var all: [Harness.Reply] = []
                for try await reply in group { all.append(reply) }
                return all
            }
            let shed = replies.filter { $0.status == 429 }
            // Arrival is not perfectly simultaneous, so exact counts vary; every reply is an answer or a 429.
            let statuses = replies.map(\.status)
            let answeredOrShed = statuses.allSatisfy { $0 == 200 || $0 == 429 }
            #expect(answeredOrShed, "\(statuses)")
            #expect(replies.filter { $0.status == 200 }.count >= 2)
            #expect(!shed.isEmpty)
            #expect(shed.allSatisfy { $0.header("retry-after") == "1" && $0.body.contains("gateway_overloaded") })
            let after = try await h.post(chat("after the burst"))
            #expect(after.status == 200, "slots are released")
        }
    }
}

@Suite struct AccountLimitGatewayTests {
    @Test func anAccountAt20RequestsAMinuteGetsNo21stUntilTheMinuteResets() async throws {
        // The free tier's 20 a minute, per account, configured and enforced by the fake upstream alike.
        let config = Harness.config.replacingOccurrences(
            of: "      - { env: K4, account: b }\n",
            with: "      - { env: K4, account: b }\n    account_limits: { requests_per_minute: 20 }\n")
        #expect(config.contains("account_limits"))
        let accounts = "accounts: { a: [\(Harness.key(1)), \(Harness.key(2))], b: [\(Harness.key(3)), \(Harness.key(4))] }"
        try await withHarness(config: config, script: "default: { requests_per_minute: 20 }\n" + accounts) { h in
            var statuses: [Int] = []
            var retryAfter: [String] = []
            for i in 0..<45 {
                let reply = try await h.post(chat("quota \(i)"))
                statuses.append(reply.status)
                if reply.status == 503 { retryAfter.append(reply.header("retry-after") ?? "") }
            }
            #expect(statuses.filter { $0 == 200 }.count == 40, "20 per account, two accounts")
            #expect(statuses.filter { $0 == 503 }.count == 5)
            #expect(retryAfter.allSatisfy { (Int($0) ?? 0) > 0 && (Int($0) ?? 0) <= 60 })
            let perKey = Dictionary(grouping: h.upstreamRequests(), by: \.key).mapValues(\.count)
            #expect((perKey["openrouter#1"] ?? 0) + (perKey["openrouter#2"] ?? 0) == 20, "no 21st request on account a: \(perKey)")
            #expect(h.fake.log().perAction["quota_429"] == nil, "the upstream never had to refuse")
            #expect(h.keyState("openrouter#1") == "rate_limited")
            h.clock.advance(by: .seconds(61))
            // The gateway's minute has moved on (the fake's real-time one has not, so nothing is sent here).
            #expect(h.keyState("openrouter#1") == "healthy")
        }
    }

    @Test func rateLimitHeadersSteerTrafficAwayBeforeTheUpstreamRefuses() async throws {
        // No account_limits configured: the only knowledge is what the upstream's headers say.
        let accounts = "accounts: { a: [\(Harness.key(1)), \(Harness.key(2))], b: [\(Harness.key(3)), \(Harness.key(4))] }"
        try await withHarness(script: "default: { requests_per_minute: 3 }\n" + accounts) { h in
            var statuses: [Int] = []
            for i in 0..<8 {
                statuses.append(try await h.post(chat("headers \(i)")).status)
            }
            #expect(statuses.filter { $0 == 200 }.count == 6, "\(statuses)")
            #expect(statuses.allSatisfy { $0 == 200 || $0 == 503 })
            #expect(h.fake.log().perAction["quota_429"] == nil, "the gateway stepped aside before the upstream had to refuse")
            #expect(h.keyState("openrouter#1") == "rate_limited")
            // The fake's window resets 60 s after its first request; the gateway waits as long.
            h.clock.advance(by: .seconds(61))
            #expect(h.keyState("openrouter#1") == "healthy")
        }
    }
}
