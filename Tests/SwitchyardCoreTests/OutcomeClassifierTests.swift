import Testing
@testable import SwitchyardCore

/// One case per row of providers.md's "what the gateway does with each signal", plus the shapes above it.
struct OutcomeClassifierTests {
    let now = Fixtures.start
    let openrouter = OutcomeClassifier(provider: .openrouter)
    let groq = OutcomeClassifier(provider: .groq)
    let openai = OutcomeClassifier(provider: .openai)

    func classify(
        _ classifier: OutcomeClassifier, _ status: Int, _ body: String, headers: [(String, String)] = []
    ) -> Outcome {
        classifier.classify(status: status, headers: headers.map { (name: $0.0, value: $0.1) }, body: Array(body.utf8), now: now)
    }

    /// Read in place, an answer is classified as when copied: a plain success without touching its headers, and
    /// anything else (an error in a 200, a 429 with its Retry-After) by the same rules.
    @Test func anAnswerReadInPlaceIsClassifiedAsWhenCopied() {
        let cases: [(Int, String, [(String, String)])] = [
            (200, #"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3}}"#, []),
            (200, #"{"error":{"code":502,"message":"Provider disconnected"}}"#, []),
            (429, #"{"error":{"code":429,"message":"Rate limit exceeded"}}"#, [("Retry-After", "7")]),
        ]
        for (status, body, headers) in cases {
            var headersRead = false
            let inPlace = Array(body.utf8).withUnsafeBytes { bytes in
                openrouter.classify(
                    status: status, headers: { headersRead = true; return headers.map { (name: $0.0, value: $0.1) } }(), body: bytes, now: now)
            }
            #expect(inPlace == classify(openrouter, status, body, headers: headers), "\(status) \(body)")
            #expect(headersRead == (body.contains("error")), "headers are read only for an answer that is not a plain success")
        }
    }

    @Test func invalidKeys() {
        #expect(classify(openrouter, 401, #"{"error":{"code":401,"message":"User not found."}}"#).kind == .keyInvalid)
        #expect(classify(groq, 401, #"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#).kind == .keyInvalid)
        #expect(classify(openrouter, 403, #"{"error":{"code":403,"message":"Forbidden"}}"#).kind == .keyInvalid)
        let gemini = #"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}]"#
        #expect(classify(OutcomeClassifier(provider: .gemini), 400, gemini).kind == .keyInvalid)
    }

    @Test func exhaustedKeys() {
        #expect(classify(openrouter, 402, #"{"error":{"code":402,"message":"Insufficient credits","metadata":{"error_type":"payment_required"}}}"#).kind == .keyExhausted)
        let quota = #"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#
        #expect(classify(openai, 429, quota).kind == .keyExhausted)
    }

    @Test func perMinuteRateLimitWithAndWithoutRetryAfter() {
        let body = #"{"error":{"code":429,"message":"Rate limit exceeded: limit_rpm/meta-llama/llama-3.2-3b-instruct","metadata":{"error_type":"rate_limit_exceeded"}}}"#
        let with = classify(openrouter, 429, body, headers: [("Retry-After", "2")])
        #expect(with.kind == .rateLimited)
        #expect(with.retry == .after(.seconds(2)))
        let without = classify(openrouter, 429, body)
        #expect(without.kind == .rateLimited)
        #expect(without.retry == nil)
    }

    @Test func rateLimitsCarryTheScopeTheProviderMeant() {
        let groqBody = #"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_1` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 2s.","type":"requests","code":"rate_limit_exceeded"}}"#
        #expect(classify(groq, 429, groqBody).scope == .accountModel)
        #expect(classify(openai, 429, #"{"error":{"message":"Rate limit","code":"rate_limit_exceeded"}}"#).scope == .accountModel)
        // The same words from a provider of unknown kind still name a model on an organisation.
        #expect(OutcomeClassifier(provider: .generic).classify(status: 429, headers: [], body: Array(groqBody.utf8), now: now).scope == .accountModel)
        let perMin = #"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. ","metadata":{"error_type":"rate_limit_exceeded"}}}"#
        #expect(classify(openrouter, 429, perMin).scope == .account)
        let upstream = #"{"error":{"code":429,"message":"meta-llama/llama-3.2-3b-instruct:free is temporarily rate-limited upstream. Please retry shortly.","metadata":{"raw":"busy","provider_name":"X"}}}"#
        #expect(classify(openrouter, 429, upstream).scope == .model)
        let vague = #"{"error":{"code":429,"message":"Rate limit exceeded: limit_rpm/x","metadata":{"error_type":"rate_limit_exceeded"}}}"#
        #expect(classify(openrouter, 429, vague).scope == .keyModel)
        #expect(OutcomeClassifier(provider: .generic).classify(status: 429, headers: [], body: [], now: now).scope == .keyModel)
        // Only rate limits carry a scope.
        #expect(classify(openrouter, 500, "{}").scope == nil)
    }

    @Test func groqTellsWhenToComeBackInItsMessage() {
        let body = #"{"error":{"message":"Rate limit reached for model `llama-3.1-8b-instant` on tokens per minute (TPM): Limit 6000, Used 3513, Requested 3166. Please try again in 6.78s.","type":"tokens","code":"rate_limit_exceeded"}}"#
        let outcome = classify(groq, 429, body, headers: [("retry-after", "7")])
        #expect(outcome.kind == .rateLimited)
        #expect(outcome.retry == .after(.seconds(7)))
        #expect(classify(groq, 429, body).retry == .after(.milliseconds(6780)))
    }

    @Test func resetHeadersAsGoDurations() {
        let outcome = classify(openai, 429, #"{"error":{"message":"Rate limit","code":"rate_limit_exceeded"}}"#, headers: [
            ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "2m59.56s"),
        ])
        #expect(outcome.retry == .after(.milliseconds(179_560)))
        let ms = classify(openai, 429, "{}", headers: [("retry-after-ms", "644")])
        #expect(ms.retry == .after(.milliseconds(644)))
    }

    @Test func openRouterDailyCapCoolsTheAccountUntilReset() {
        let resetMs = now.millisecondsSinceEpoch + 5 * 3_600_000
        let body = #"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"\#(resetMs)"}}}}"#
        let outcome = classify(openrouter, 429, body)
        #expect(outcome.kind == .accountExhausted)
        #expect(outcome.retry == .at(Timestamp(millisecondsSinceEpoch: resetMs)))
        let bare = classify(openrouter, 429, #"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day"}}"#)
        #expect(bare.retry == .at(now.nextUTCMidnight))
    }

    @Test func geminiPerDayQuota() {
        let body = #"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}]"#
        #expect(classify(OutcomeClassifier(provider: .gemini), 429, body).kind == .accountExhausted)
    }

    @Test func requestFaultsGoBackToTheClient() {
        #expect(classify(groq, 400, #"{"error":{"message":"property 'foo' is unsupported","type":"invalid_request_error"}}"#).kind == .requestInvalid)
        #expect(classify(openai, 422, #"{"error":{"message":"bad"}}"#).kind == .requestInvalid)
        #expect(classify(openai, 413, #"{"error":{"message":"Request Entity Too Large"}}"#).kind == .requestInvalid)
    }

    @Test func contextLengthByCodeOrMessage() {
        #expect(classify(openai, 400, #"{"error":{"message":"too long","code":"context_length_exceeded"}}"#).kind == .contextTooLong)
        #expect(classify(openrouter, 400, #"{"error":{"code":400,"message":"This endpoint's maximum context length is 8192 tokens. However, you requested about 20000 tokens. Please reduce the length."}}"#).kind == .contextTooLong)
        #expect(classify(OutcomeClassifier(provider: .anthropic), 400, #"{"error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#).kind == .contextTooLong)
        #expect(classify(openrouter, 502, #"{"error":{"code":502,"message":"Provider returned error","metadata":{"error_type":"context_length_exceeded"}}}"#).kind == .contextTooLong)
    }

    @Test func groq413TPMMeansAnotherModel() {
        let body = #"{"error":{"message":"Request too large for model `llama-3.1-8b-instant` on tokens per minute (TPM): Limit 6000, Requested 9000","type":"tokens","code":"rate_limit_exceeded"}}"#
        #expect(classify(groq, 413, body).kind == .requestTooLargeForModel)
    }

    @Test func contentPolicyAndModeration() {
        #expect(classify(openrouter, 400, #"{"error":{"code":400,"message":"Blocked","metadata":{"error_type":"content_policy_violation"}}}"#).kind == .contentRefused)
        let moderation = #"{"error":{"code":403,"message":"Your input was flagged","metadata":{"error_type":"permission_denied","reasons":["violence"]}}}"#
        let outcome = classify(openrouter, 403, moderation)
        #expect(outcome.kind == .contentRefused)
        #expect(outcome.message?.contains("violence") == true)
    }

    @Test func modelGone() {
        #expect(classify(openrouter, 404, #"{"error":{"code":404,"message":"No endpoints found for openchat/openchat-7b:free."}}"#).kind == .modelGone)
    }

    @Test(arguments: [408, 500, 502, 503, 504, 529])
    func transientStatuses(status: Int) {
        #expect(classify(openrouter, status, #"{"error":{"code":\#(status),"message":"upstream trouble"}}"#).kind == .transient)
    }

    @Test func transientHonoursRetryAfterDates() {
        let outcome = classify(openai, 503, "", headers: [("Retry-After", "Fri, 15 Jan 2027 08:00:30 GMT")])
        #expect(outcome.retry == .at(Timestamp(secondsSinceEpoch: 1_800_000_030)))
    }

    @Test func successBodiesCarryingErrors() {
        #expect(classify(openrouter, 200, #"{"id":"gen-1","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#).kind == .success)
        let choiceError = #"{"id":"gen-1","choices":[{"error":{"code":502,"message":"Provider disconnected"},"finish_reason":"error"}]}"#
        #expect(classify(openrouter, 200, choiceError).kind == .transient)
        // The word "error" inside an answer is not an error.
        #expect(classify(openrouter, 200, #"{"choices":[{"message":{"content":"an \"error\" word"},"finish_reason":"stop"}]}"#).kind == .success)
    }

    @Test func streamErrorEvent() {
        let event = #"{"id":"gen-1","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"delta":{"content":""},"finish_reason":"error"}]}"#
        #expect(openrouter.classifyStreamError(event: Array(event.utf8)).kind == .transient)
    }

    @Test func unknownShapesNeverCrash() {
        for body in ["", "not json", "[]", "[1,2]", "null", #"{"error":5}"#, #"{"error":{"code":{"x":1}}}"#, "\u{0}\u{1}"] {
            _ = classify(openrouter, 500, body)
            _ = classify(openrouter, 200, body)
            _ = classify(openrouter, 429, body)
        }
    }

    @Test func echoedKeysAreRedacted() {
        let key = "sk-or-v1-0123456789abcdef0123456789abcdef"
        let outcome = openrouter.classify(
            status: 401, headers: [], body: Array(#"{"error":{"message":"Incorrect API key provided: \#(key)"}}"#.utf8), now: now,
            secrets: [key])
        #expect(outcome.message?.contains(key) == false)
        #expect(outcome.message?.contains("sk-or-…cdef") == true)
    }
}
