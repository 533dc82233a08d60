import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct StreamingTests {
    static let fast = "meta-llama/llama-3.1-8b-instruct:free"

    @Test func aHealthyStreamPassesThroughAndDecodesStrictly() async throws {
        try await withHarness(script: "default: { keep_alive: true }") { h in
            let reply = try await h.post(chat("stream ok", stream: true))
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "text/event-stream")
            #expect(!reply.body.contains("OPENROUTER PROCESSING"))
            let stream = ParsedStream(reply.events)
            #expect(stream.invalidEvents.isEmpty)
            #expect(stream.content == expectedAnswer("stream ok"))
            #expect(stream.finishReason == "stop")
            #expect(stream.done)
        }
    }

    /// Once output has begun, silence is timed against `stream_idle_timeout` even when `first_token_timeout` is
    /// far longer: a stream that stalls is continued after the idle timeout, not the first token's.
    @Test func aStallAfterOutputIsTimedByTheIdleTimeout() async throws {
        let script = #"models_behavior: { "\#(Self.fast)": { fault: stall, after_tokens: 5 } }"#
        let timeouts: (inout RoutingTable) -> Void = {
            $0.retry.firstTokenTimeout = .seconds(6)
            $0.retry.streamIdleTimeout = .milliseconds(300)
        }
        try await withHarness(script: script, edit: timeouts) { h in
            let prompt = "stall after output"
            let started = Date()
            let reply = try await h.post(chat(prompt, stream: true))
            let seconds = Date().timeIntervalSince(started)
            #expect(ParsedStream(reply.events).content == expectedAnswer(prompt))
            #expect(h.fake.log().perAction["prefill"] == 1)
            #expect(seconds < 3 * timingScale, "continued after \(seconds)s: the stall was timed by the first token's 6 s")
        }
    }

    @Test(arguments: ["cut", "stall", "stream_error"])
    func anInterruptedStreamIsContinuedIntoOneCompleteAnswer(fault: String) async throws {
        let script = #"models_behavior: { "\#(Self.fast)": { fault: \#(fault), after_tokens: 5 } }"#
        try await withHarness(script: script) { h in
            let prompt = "continue after \(fault)"
            let reply = try await h.post(chat(prompt, stream: true))
            #expect(reply.status == 200)
            #expect(reply.header("x-switchyard-model") == "fast-8k")
            let stream = ParsedStream(reply.events)
            #expect(stream.invalidEvents.isEmpty)
            #expect(stream.errorEvent == nil)
            #expect(stream.content == expectedAnswer(prompt))
            #expect(stream.done)
            #expect(h.fake.log().perAction["prefill"] == 1)
        }
    }

    @Test func withNoCandidateThatCanContinueTheStreamEndsWithAnErrorEvent() async throws {
        try await withHarness(script: #"models_behavior: { "openchat/openchat-7b:free": { fault: cut, after_tokens: 4 } }"#) { h in
            let reply = try await h.post(chat("no prefill", model: "noprefill", stream: true))
            #expect(reply.status == 200)
            let stream = ParsedStream(reply.events)
            #expect(stream.errorEvent?["code"] as? String == "stream_interrupted")
            #expect(!stream.done)
            #expect(stream.finishReason == nil)
            #expect(reply.events.last?.contains("\"error\"") == true)
        }
    }

    @Test func aPrefillRejectionIsNeverTheFinalError() async throws {
        let script = """
            models_behavior:
              "\(Self.fast)": { fault: cut, after_tokens: 3 }
              "google/gemma-2-9b-it:free": { reject_prefill: true }
            """
        try await withHarness(script: script) { h in
            let reply = try await h.post(chat("reject then continue", stream: true))
            let stream = ParsedStream(reply.events)
            #expect(stream.content == expectedAnswer("reject then continue"))
            #expect(stream.done)
            #expect(h.fake.log().perAction["prefill_rejected"] != nil)
        }
    }

    @Test func aFailureBeforeTheFirstByteIsInvisible() async throws {
        let script = #"models_behavior: { "\#(Self.fast)": { fault: stream_error, after_tokens: 0 } }"#
        try await withHarness(script: script) { h in
            let reply = try await h.post(chat("invisible", stream: true))
            #expect(reply.header("x-switchyard-model") != "fast-8k")
            let stream = ParsedStream(reply.events)
            #expect(stream.content == expectedAnswer("invisible"))
            #expect(h.fake.log().perAction["prefill"] == nil)
        }
    }

    @Test func aSilentUpstreamIsLeftForTheNextCandidateAndNotRetried() async throws {
        // The silence outlasts first_token_timeout (0.6 s) by far, also on a sanitizer's slower build.
        let silence = 5 * timingScale
        let script = #"models_behavior: { "\#(Self.fast)": { fault: slow_first_token, delay: \#(Int(silence))s } }"#
        try await withHarness(script: script) { h in
            let started = Date()
            let reply = try await h.post(chat("silent", stream: true))
            let elapsed = Date().timeIntervalSince(started)
            // The next candidate answers. Under a sanitizer's full-suite load its first token can miss the (doubled)
            // timeout too and the long model answers; the silent one was left either way.
            let model = reply.header("x-switchyard-model")
            if timingScale == 1 { #expect(model == "other-8k") } else { #expect(model != "fast-8k") }
            #expect(ParsedStream(reply.events).content == expectedAnswer("silent"))
            // It moved on after first_token_timeout (0.6 s) instead of waiting out the silence.
            #expect(elapsed >= 0.55 && elapsed < silence - 1, "\(elapsed)s")
            #expect(h.fake.log().perModel[Self.fast] == 1)
        }
    }

    @Test func aMalformedEventNeverReachesTheClientAndTheNextRequestIsServed() async throws {
        let script = #"models_behavior: { "\#(Self.fast)": { fault: malformed, after_tokens: 2, times: 1 } }"#
        try await withHarness(script: script) { h in
            let reply = try await h.post(chat("malformed", stream: true))
            let stream = ParsedStream(reply.events)
            #expect(stream.invalidEvents.isEmpty)
            #expect(stream.content == expectedAnswer("malformed"))
            let next = try await h.post(chat("after malformed", stream: true))
            #expect(ParsedStream(next.events).content == expectedAnswer("after malformed"))
        }
    }

    @Test func aStreamWithoutDoneIsFinalisedPromptly() async throws {
        // With a 5s idle timeout, finishing well under it shows the gateway did not wait for silence.
        let config = Harness.config.replacingOccurrences(of: "stream_idle_timeout: \(Harness.streamTimeout)", with: "stream_idle_timeout: 5s")
        try await withHarness(config: config, script: "default: no_done") { h in
            let started = Date()
            let reply = try await h.post(chat("no done", stream: true))
            let stream = ParsedStream(reply.events)
            #expect(stream.content == expectedAnswer("no done"))
            #expect(stream.done)
            #expect(Date().timeIntervalSince(started) < 2.5 * timingScale)
            #expect(h.fake.log().total == 1)
        }
    }

    @Test func allCandidatesFailingBeforeOutputIsAPlainErrorResponse() async throws {
        try await withHarness(script: "default: error_503") { h in
            let reply = try await h.post(chat("down", stream: true))
            #expect(reply.status == 502)
            #expect(reply.header("content-type") == "application/json")
        }
    }
}
