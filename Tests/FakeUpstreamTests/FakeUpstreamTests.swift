import AsyncHTTPClient
import FakeUpstream
import Foundation
import Testing

@Suite struct AnswerTests {
    @Test func nonStreamingAnswerHasTheProvidersShape() async throws {
        try await withFake { server, client in
            let reply = try await post(client, server, body: chatBody(prompt: "what is a hump yard?"))
            #expect(reply.status == 200)
            let json = reply.json
            #expect((json["id"] as? String)?.hasPrefix("gen-") == true)
            #expect(json["object"] as? String == "chat.completion")
            #expect(json["created"] is Int)
            #expect(json["model"] as? String == "llama-3.1-8b-instant")
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "stop")
            let content = (choice["message"] as? [String: Any])?["content"] as? String
            #expect(content == FakeAnswer.text(for: "user:what is a hump yard?", count: 16))
            let usage = try #require(json["usage"] as? [String: Int])
            #expect(usage["completion_tokens"] == 16)
            #expect(usage["prompt_tokens"]! > 0)
            #expect(usage["total_tokens"] == usage["prompt_tokens"]! + 16)
            // Deterministic: the same prompt, the same answer.
            let again = try await post(client, server, body: chatBody(prompt: "what is a hump yard?"))
            #expect(((again.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String == content)
        }
    }

    @Test func streamingAnswerEndsWithUsageAndDone() async throws {
        try await withFake("default: { keep_alive: true, answer_tokens: 8 }") { server, client in
            let reply = try await post(client, server, body: chatBody(prompt: "stream me", stream: true))
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "text/event-stream")
            #expect(reply.body.hasPrefix(": OPENROUTER PROCESSING\n\n"))
            #expect(reply.streamedContent == FakeAnswer.text(for: "user:stream me", count: 8))
            let events = reply.events
            #expect(events.last == "[DONE]")
            let usage = try #require(try JSONSerialization.jsonObject(with: Data(events[events.count - 2].utf8)) as? [String: Any])
            #expect((usage["choices"] as? [Any])?.isEmpty == true)
            #expect((usage["usage"] as? [String: Int])?["completion_tokens"] == 8)
            let finish = try #require(try JSONSerialization.jsonObject(with: Data(events[events.count - 3].utf8)) as? [String: Any])
            #expect(((finish["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "stop")
        }
    }

    @Test func maxTokensCutsTheAnswerWithLength() async throws {
        try await withFake { server, client in
            let reply = try await post(client, server, body: chatBody(maxTokens: 3))
            let choice = (reply.json["choices"] as? [[String: Any]])?.first
            #expect(choice?["finish_reason"] as? String == "length")
            #expect((reply.json["usage"] as? [String: Int])?["completion_tokens"] == 3)
        }
    }

    @Test func prefillIsContinuedWithTheRemainderOnly() async throws {
        try await withFake { server, client in
            let full = FakeAnswer.tokens(for: "user:continue me", count: 16)
            let prefix = full.prefix(5).joined()
            let reply = try await post(client, server, body: chatBody(prompt: "continue me", stream: true, prefill: prefix))
            #expect(prefix + reply.streamedContent == full.joined())
            // A prefill that ends inside a word is continued from there.
            let partial = prefix + String(full[5].prefix(2))
            let reply2 = try await post(client, server, body: chatBody(prompt: "continue me", prefill: partial))
            let content = ((reply2.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(partial + (content ?? "") == full.joined())
        }
    }

    @Test func prefillCanBeRejectedLikeAProvider() async throws {
        try await withFake("models_behavior: { llama-3.1-8b-instant: { reject_prefill: true } }") { server, client in
            let reply = try await post(client, server, body: chatBody(prefill: "Freight"))
            #expect(reply.status == 400)
            #expect(((reply.json["error"] as? [String: Any])?["code"] as? String) == "prefill_unsupported")
            let status1 = try await post(client, server, body: chatBody()).status
            #expect(status1 == 200)
        }
    }

    @Test func modelsListTheirContextLength() async throws {
        try await withFake(#"models: { "tiny/model": 2048 }"#) { server, client in
            let reply = try await get(client, server, "/v1/models")
            let data = try #require(reply.json["data"] as? [[String: Any]])
            #expect(data.count == 1)
            #expect(data[0]["id"] as? String == "tiny/model")
            #expect(data[0]["context_length"] as? Int == 2048)
        }
    }

    @Test func contextLengthIsEnforced() async throws {
        try await withFake(#"models: { "tiny/model": 300 }"#) { server, client in
            let long = String(repeating: "word ", count: 400)
            let reply = try await post(client, server, body: chatBody(model: "tiny/model", prompt: long))
            #expect(reply.status == 400)
            #expect(((reply.json["error"] as? [String: Any])?["code"] as? String) == "context_length_exceeded")
            let status2 = try await post(client, server, body: chatBody(model: "tiny/model", prompt: "short")).status
            #expect(status2 == 200)
            let status3 = try await post(client, server, body: chatBody(model: "other/model")).status
            #expect(status3 == 404)
        }
    }

    @Test func requestsWithoutAKeyAreRefused() async throws {
        try await withFake { server, client in
            let status4 = try await post(client, server, key: "", body: chatBody()).status
            #expect(status4 == 401)
            let status5 = try await post(client, server, body: "{nope").status
            #expect(status5 == 400)
        }
    }
}

@Suite struct FaultTests {
    struct Expected: Sendable, CustomTestStringConvertible {
        var fault: String
        var status: Int
        var code: String?
        var header: String?
        var message: String?
        var testDescription: String { fault }
    }

    @Test(arguments: [
        Expected(fault: "error_500", status: 500, code: "internal_error"),
        Expected(fault: "error_502", status: 502, code: "502"),
        Expected(fault: "error_503", status: 503, code: "503"),
        Expected(fault: "error_503_retry_after", status: 503, code: "503", header: "Retry-After"),
        Expected(fault: "rate_limit", status: 429, code: "429", header: "Retry-After"),
        Expected(fault: "rate_limit_no_retry_after", status: 429, code: "429"),
        Expected(fault: "daily_cap", status: 429, code: "429", header: "X-RateLimit-Reset", message: "free-models-per-day"),
        Expected(fault: "invalid_key", status: 401, code: "invalid_api_key"),
        Expected(fault: "payment_required", status: 402, code: "402"),
        Expected(fault: "moderation", status: 403, code: "403", message: "flagged"),
        Expected(fault: "model_gone", status: 404, code: "404", message: "No endpoints found"),
        Expected(fault: "content_policy", status: 400, code: "400", message: "content policy"),
        Expected(fault: "groq_tpm", status: 413, code: "rate_limit_exceeded", message: "tokens per minute"),
    ])
    func errorAnswers(expected: Expected) async throws {
        try await withFake("default: { fault: \(expected.fault), retry_after: 2 }") { server, client in
            let reply = try await post(client, server, body: chatBody())
            #expect(reply.status == expected.status)
            let error = try #require(reply.json["error"] as? [String: Any])
            let code = error["code"].map { "\($0)" }
            #expect(code == expected.code)
            if let header = expected.header { #expect(reply.header(header) != nil) }
            if expected.fault == "rate_limit_no_retry_after" { #expect(reply.header("Retry-After") == nil) }
            if let message = expected.message { #expect((error["message"] as? String)?.contains(message) == true) }
        }
    }

    @Test func dailyCapCarriesResetInMetadataToo() async throws {
        try await withFake("default: daily_cap") { server, client in
            let reply = try await post(client, server, body: chatBody())
            let metadata = (reply.json["error"] as? [String: Any])?["metadata"] as? [String: Any]
            let reset = (metadata?["headers"] as? [String: String])?["X-RateLimit-Reset"]
            #expect(reset != nil && reset == reply.header("X-RateLimit-Reset"))
            #expect(Int64(reset ?? "0")! % 86_400_000 == 0)
        }
    }

    @Test func aResetArrivesBeforeAnyByte() async throws {
        try await withFake("default: reset") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(), timeout: 3)
            #expect(result.end == .reset)
            #expect(result.bytes.isEmpty)
        }
    }

    @Test func aHangNeverAnswers() async throws {
        try await withFake("default: hang") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(), timeout: 0.5)
            #expect(result.end == .timedOut)
            #expect(result.bytes.isEmpty)
        }
    }

    @Test func aCutStreamEndsWithoutTheTerminatingChunk() async throws {
        try await withFake("default: { fault: cut, after_tokens: 4 }") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(stream: true), timeout: 3)
            #expect(result.end == .closed)
            #expect(result.bytes.hasPrefix("HTTP/1.1 200"))
            #expect(result.bytes.components(separatedBy: "\"content\":\"").count - 1 == 5)  // role chunk + 4 tokens
            #expect(!result.bytes.contains("[DONE]"))
            #expect(!result.bytes.hasSuffix("0\r\n\r\n"))
        }
    }

    @Test func aStallStaysOpenAndSilent() async throws {
        try await withFake("default: { fault: stall, after_tokens: 3 }") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(stream: true), timeout: 0.6)
            #expect(result.end == .timedOut)
            #expect(result.bytes.contains("\"content\""))
            #expect(!result.bytes.contains("[DONE]"))
        }
    }

    @Test func theFirstTokenCanComeLate() async throws {
        try await withFake("default: { fault: slow_first_token, delay: 400ms }") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(stream: true), timeout: 5)
            #expect(result.end == .timedOut || result.end == .closed || result.bytes.contains("[DONE]"))
            let headerAt = try #require(result.arrivals.first { $0.text.hasPrefix("HTTP/1.1 200") }?.ms)
            let firstData = try #require(result.arrivals.first { $0.text.contains("data: ") }?.ms)
            #expect(headerAt < 300)
            #expect(firstData >= 390)
        }
    }

    @Test func aMalformedEventAppearsAndTheStreamGoesOn() async throws {
        try await withFake("default: { fault: malformed, after_tokens: 2, answer_tokens: 6 }") { server, client in
            let reply = try await post(client, server, body: chatBody(stream: true))
            let bad = reply.events.filter { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) == nil && $0 != "[DONE]" }
            #expect(bad.count == 1)
            #expect(reply.streamedContent == FakeAnswer.text(for: "user:hello", count: 6))
            #expect(reply.events.last == "[DONE]")
        }
    }

    @Test func aStreamCanEndWithoutDone() async throws {
        try await withFake("default: no_done") { server, client in
            let reply = try await post(client, server, body: chatBody(stream: true))
            #expect(reply.status == 200)
            #expect(!reply.body.contains("[DONE]"))
            #expect(reply.streamedContent == FakeAnswer.text(for: "user:hello", count: 16))
        }
    }

    @Test func anInStreamErrorEventLooksLikeOpenRouters() async throws {
        try await withFake("default: { fault: stream_error, after_tokens: 3 }") { server, client in
            let reply = try await post(client, server, body: chatBody(stream: true))
            #expect(reply.status == 200)
            let last = try #require(try JSONSerialization.jsonObject(with: Data(reply.events.last!.utf8)) as? [String: Any])
            #expect(last["error"] != nil)
            #expect(((last["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "error")
            #expect(reply.streamedContent == FakeAnswer.tokens(for: "user:hello", count: 16).prefix(3).joined())
        }
    }

    @Test func aSuccessStatusCanCarryAChoiceError() async throws {
        try await withFake("default: choice_error") { server, client in
            let reply = try await post(client, server, body: chatBody())
            #expect(reply.status == 200)
            let choice = (reply.json["choices"] as? [[String: Any]])?.first
            #expect(choice?["error"] != nil)
            #expect(choice?["finish_reason"] as? String == "error")
        }
    }

    @Test func faultsApplyOnceNTimesOrPersistently() async throws {
        try await withFake("keys: { sk-once: { fault: error_500, times: 1 }, sk-thrice: { fault: error_500, times: 3 }, sk-always: error_500 }") { server, client in
            var statuses: [String: [Int]] = [:]
            for key in ["sk-once", "sk-thrice", "sk-always"] {
                for _ in 0..<5 { statuses[key, default: []].append(try await post(client, server, key: key, body: chatBody()).status) }
            }
            #expect(statuses["sk-once"] == [500, 200, 200, 200, 200])
            #expect(statuses["sk-thrice"] == [500, 500, 500, 200, 200])
            #expect(statuses["sk-always"] == [500, 500, 500, 500, 500])
        }
    }

    @Test func probabilityAppliesToAShare() async throws {
        try await withFake("default: { fault: error_503, probability: 0.5 }") { server, client in
            var failures = 0
            for _ in 0..<200 where try await post(client, server, body: chatBody()).status == 503 { failures += 1 }
            #expect((60...140).contains(failures), "\(failures) of 200")
        }
    }

    @Test func flappingHealsAfterItsDownTime() async throws {
        try await withFake("default: { fault: error_502, down_for: 1s }") { server, client in
            server.reset()  // down time counts from start or reset
            let down = try await post(client, server, body: chatBody()).status
            #expect(down == 502)
            try await Task.sleep(for: .milliseconds(1050))
            let healed = try await post(client, server, body: chatBody()).status
            #expect(healed == 200)
            server.reset()
            let downAgain = try await post(client, server, body: chatBody()).status
            #expect(downAgain == 502)
        }
    }

    @Test func keyBehaviourOverridesModelOverridesDefault() async throws {
        let script = """
            default: { fault: error_500 }
            models_behavior: { "google/gemma-2-9b-it:free": { fault: model_gone } }
            keys: { sk-good: { fault: none } }
            """
        try await withFake(script) { server, client in
            let status9 = try await post(client, server, body: chatBody()).status
            #expect(status9 == 500)
            let status10 = try await post(client, server, body: chatBody(model: "google/gemma-2-9b-it:free")).status
            #expect(status10 == 404)
            let status11 = try await post(client, server, key: "sk-good", body: chatBody(model: "google/gemma-2-9b-it:free")).status
            #expect(status11 == 200)
        }
    }

    @Test func latencyAndTokenIntervalSlowTheAnswer() async throws {
        try await withFake("default: { latency: 150ms, token_interval: 20ms, answer_tokens: 5 }") { server, _ in
            let result = try await RawExchange.run(port: server.port, body: chatBody(stream: true), timeout: 5)
            let first = try #require(result.arrivals.first?.ms)
            let last = try #require(result.arrivals.last?.ms)
            #expect(first >= 145)
            #expect(last - first >= 5 * 19)
        }
    }

    @Test func aSimulatedQuotaSendsHeadersThen429() async throws {
        try await withFake("default: { requests_per_minute: 3 }\naccounts: { main: [sk-a, sk-b] }") { server, client in
            var remaining: [String] = []
            for key in ["sk-a", "sk-b", "sk-a"] {
                let reply = try await post(client, server, key: key, body: chatBody())
                #expect(reply.status == 200)
                remaining.append(reply.header("x-ratelimit-remaining-requests") ?? "")
            }
            #expect(remaining == ["2", "1", "0"])
            let over = try await post(client, server, key: "sk-b", body: chatBody())
            #expect(over.status == 429)
            #expect(over.header("x-ratelimit-remaining-requests") == "0")
            let status12 = try await post(client, server, key: "sk-other", body: chatBody()).status
            #expect(status12 == 200)
        }
    }
}

@Suite struct ControlTests {
    @Test func behaviourChangesMidRunAndTheLogCountsEverything() async throws {
        try await withFake("key_labels: { sk-fake-1: openrouter#1 }") { server, client in
            let status13 = try await post(client, server, body: chatBody()).status
            #expect(status13 == 200)
            let change = try await post(client, server, path: "/_control/behavior", body: #"{"keys":{"sk-fake-1":{"fault":"error_503"}}}"#)
            #expect(change.status == 200)
            let status14 = try await post(client, server, body: chatBody()).status
            #expect(status14 == 503)
            let status15 = try await post(client, server, key: "sk-fake-2", body: chatBody(stream: true)).status
            #expect(status15 == 200)
            let bad = try await post(client, server, path: "/_control/behavior", body: #"{"keys":{"sk-fake-1":{"fault":"explode"}}}"#)
            #expect(bad.status == 400)
            #expect(bad.body.contains("unknown fault 'explode'"))

            let log = try JSONDecoder().decode(FakeLog.self, from: Data(try await get(client, server, "/_control/log").body.utf8))
            #expect(log.total == 3)
            #expect(log.perKey["openrouter#1"] == 2)
            #expect(log.perKey["…-2"] == 1)  // unlabelled keys are logged masked
            #expect(log.perModel["llama-3.1-8b-instant"] == 3)
            #expect(log.perAction["error_503"] == 1)
            #expect(log.requests.map(\.action) == ["ok", "error_503", "ok"])
            #expect(log.requests[2].stream)
            #expect(log.requests.allSatisfy { $0.promptTokens > 0 && $0.timeMs > 0 })

            let status16 = try await post(client, server, path: "/_control/reset", body: "").status
            #expect(status16 == 200)
            #expect(server.log().total == 0)
        }
    }

    @Test func theKeyEndpointAnswersLikeOpenRouter() async throws {
        try await withFake("keys: { sk-dead: invalid_key }") { server, client in
            let status17 = try await get(client, server, "/api/v1/key").status
            #expect(status17 == 200)
            let status18 = try await get(client, server, "/api/v1/key", key: "sk-dead").status
            #expect(status18 == 401)
        }
    }

    @Test func scriptsAreCheckedWhenRead() {
        #expect(throws: FakeScriptError.self) { try FakeScript.parse("defaults: {}") }
        #expect(throws: FakeScriptError.self) { try FakeScript.parse("default: { latency: soon }") }
        let script = try? FakeScript.parse("default: { latency: 2ms..5ms, fault: error_500, probability: 0.1 }")
        #expect(script?.defaultBehavior.latency == .milliseconds(2))
        #expect(script?.defaultBehavior.latencyMax == .milliseconds(5))
    }
}

/// The rate limits with a scope: per model per organisation (Groq, OpenAI), per account for every free model
/// (OpenRouter's `free-models-per-min`), per model for everyone (OpenRouter's "rate-limited upstream").
@Suite struct ScopedRateLimitTests {
    static let model = "meta-llama/llama-3.2-3b-instruct:free"

    @Test func aPerModelLimitLooksLikeGroqs() async throws {
        try await withFake("default: { fault: rate_limit_model, retry_after: 7 }") { server, client in
            let reply = try await post(client, server, body: chatBody(model: Self.model))
            #expect(reply.status == 429)
            #expect(reply.header("retry-after") == "7")
            let error = try #require(reply.json["error"] as? [String: Any])
            #expect(error["message"] as? String
                == "Rate limit reached for model `\(Self.model)` in organization `org_fake` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 7s.")
            #expect(error["type"] as? String == "requests")
            #expect(error["code"] as? String == "rate_limit_exceeded")
            #expect(error.keys.contains("param"))
            #expect(server.log().requests.map(\.action) == ["rate_limit_model"])
        }
    }

    @Test func aPerModelLimitSaysTwoSecondsByDefault() async throws {
        try await withFake("default: rate_limit_model") { server, client in
            let reply = try await post(client, server, body: chatBody())
            #expect(reply.header("retry-after") == "2")
            #expect(((reply.json["error"] as? [String: Any])?["message"] as? String)?.hasSuffix("Please try again in 2s.") == true)
        }
    }

    @Test func theFreeModelsPerMinuteLimitLooksLikeOpenRouters() async throws {
        try await withFake("default: { fault: free_models_per_min, retry_after: 5 }") { server, client in
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            let reply = try await post(client, server, body: chatBody(model: Self.model))
            let after = Int64(Date().timeIntervalSince1970 * 1000)
            #expect(reply.status == 429)
            #expect(reply.header("Retry-After") == nil)
            #expect(reply.header("X-RateLimit-Limit") == "20")
            #expect(reply.header("X-RateLimit-Remaining") == "0")
            let reset = try #require(Int64(reply.header("X-RateLimit-Reset") ?? ""))
            #expect(reset >= before + 5000 && reset <= after + 5000)
            let error = try #require(reply.json["error"] as? [String: Any])
            #expect(error["code"] as? Int == 429)
            #expect(error["message"] as? String == "Rate limit exceeded: free-models-per-min. ")
            let metadata = try #require(error["metadata"] as? [String: Any])
            #expect(metadata["error_type"] as? String == "rate_limit_exceeded")
            #expect(metadata["headers"] as? [String: String]
                == ["X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "\(reset)"])
            #expect(server.log().requests.map(\.action) == ["free_models_per_min"])
        }
    }

    @Test func theFreeModelsPerMinuteResetIsTwoSecondsAwayByDefault() async throws {
        try await withFake("default: free_models_per_min") { server, client in
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            let reply = try await post(client, server, body: chatBody())
            let reset = try #require(Int64(reply.header("X-RateLimit-Reset") ?? ""))
            #expect(reset >= before + 2000 && reset <= before + 3000)
        }
    }

    @Test func aModelRateLimitedUpstreamLooksLikeOpenRouters() async throws {
        try await withFake("default: { fault: upstream_rate_limited, retry_after: 3 }") { server, client in
            let reply = try await post(client, server, body: chatBody(model: Self.model))
            #expect(reply.status == 429)
            #expect(reply.header("Retry-After") == "3")
            let error = try #require(reply.json["error"] as? [String: Any])
            #expect(error["code"] as? Int == 429)
            #expect(error["message"] as? String
                == "\(Self.model) is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://example.invalid/settings/integrations")
            let metadata = try #require(error["metadata"] as? [String: Any])
            #expect(metadata["raw"] as? String == "\(Self.model) is temporarily rate-limited upstream.")
            #expect(metadata["provider_name"] as? String == "FakeProvider")
            #expect(server.log().requests.map(\.action) == ["upstream_rate_limited"])
            let defaulted = try await withFakeReply("default: upstream_rate_limited")
            #expect(defaulted.header("Retry-After") == "2")
        }
    }

    /// Key and account faults are answered before the model is looked at, like `rate_limit`: even for a model
    /// the fake does not serve, or a prompt over the model's context.
    @Test(arguments: ["rate_limit_model", "free_models_per_min", "upstream_rate_limited"])
    func answeredBeforeTheModelChecks(fault: String) async throws {
        try await withFake(#"models: { "tiny/model": 50 }"# + "\ndefault: \(fault)") { server, client in
            let unknown = try await post(client, server, body: chatBody(model: "other/model"))
            #expect(unknown.status == 429)
            let long = try await post(client, server, body: chatBody(model: "tiny/model", prompt: String(repeating: "word ", count: 200)))
            #expect(long.status == 429)
        }
    }

    @Test(arguments: ["rate_limit_model", "free_models_per_min", "upstream_rate_limited"])
    func timesCountsPerLayer(fault: String) async throws {
        try await withFake("models_behavior: { \"\(Self.model)\": { fault: \(fault), times: 2 } }") { server, client in
            var statuses: [Int] = []
            for _ in 0..<4 { statuses.append(try await post(client, server, body: chatBody(model: Self.model)).status) }
            let other = try await post(client, server, body: chatBody()).status
            #expect(statuses == [429, 429, 200, 200])
            #expect(other == 200)
        }
    }

    @Test(arguments: ["rate_limit_model", "free_models_per_min", "upstream_rate_limited"])
    func downForHeals(fault: String) async throws {
        try await withFake("keys: { sk-fake-1: { fault: \(fault), down_for: 300ms } }") { server, client in
            server.reset()
            let down = try await post(client, server, body: chatBody(stream: true)).status
            #expect(down == 429)
            try await Task.sleep(for: .milliseconds(350))
            let healed = try await post(client, server, body: chatBody(stream: true))
            #expect(healed.status == 200)
            #expect(healed.events.last == "[DONE]")
        }
    }

    @Test(arguments: ["rate_limit_model", "free_models_per_min", "upstream_rate_limited"])
    func probabilityAppliesToAShare(fault: String) async throws {
        try await withFake("default: { fault: \(fault), probability: 0.5 }") { server, client in
            var limited = 0
            for _ in 0..<100 where try await post(client, server, body: chatBody()).status == 429 { limited += 1 }
            #expect((25...75).contains(limited), "\(limited) of 100")
        }
    }

    @Test func theNewFaultsAreListedWhenAScriptNamesAnUnknownOne() {
        #expect(throws: FakeScriptError.self) { try FakeScript.parse("default: rate_limit_everything") }
        do {
            _ = try FakeScript.parse("default: rate_limit_everything")
        } catch {
            let text = "\(error)"
            for name in ["rate_limit_model", "free_models_per_min", "upstream_rate_limited"] { #expect(text.contains(name)) }
        }
    }
}

/// One request to a fake started for it: the reply.
func withFakeReply(_ yaml: String, body: String = chatBody()) async throws -> Reply {
    var reply: Reply?
    try await withFake(yaml) { server, client in reply = try await post(client, server, body: body) }
    return try #require(reply)
}
