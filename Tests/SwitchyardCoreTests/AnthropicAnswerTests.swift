import Testing

@testable import SwitchyardCore

struct AnthropicAnswerTests {
    func answer(_ completion: String, model: String = "auto", stop: [String] = [], estimate: Int = 0) throws -> AnthropicAnswer {
        let answer = try #require(
            AnthropicAnswer.translate(completion: Array(completion.utf8), model: model, stopSequences: stop, estimatedInputTokens: estimate))
        // Every answer must be one Anthropic's SDKs accept.
        _ = try AnthropicSchema.Message.decode(answer.body)
        return answer
    }

    func text(_ answer: AnthropicAnswer) -> String { String(decoding: answer.body, as: UTF8.self) }

    @Test func aTextAnswer() throws {
        let a = try answer(
            #"{"id":"chatcmpl-abc123","object":"chat.completion","created":1,"model":"meta-llama/llama-3.1-8b-instruct:free","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#
        )
        #expect(
            text(a)
                == #"{"id":"msg_chatcmpl-abc123","type":"message","role":"assistant","model":"auto","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":3}}"#
        )
        #expect(a.stopReason == "end_turn")
        #expect(a.brokenToolCalls == 0)
    }

    @Test func toolCallsBecomeToolUseBlocksWithParsedInput() throws {
        let a = try answer(
            #"{"id":"gen-77","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":40,"completion_tokens":20}}"#,
            model: "quality")
        #expect(
            text(a)
                == #"{"id":"msg_gen-77","type":"message","role":"assistant","model":"quality","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"call_a","name":"get_weather","input":{"city": "Paris"}},{"type":"tool_use","id":"call_b","name":"get_time","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":20}}"#
        )
    }

    @Test func brokenArgumentsBecomeAnEmptyInputAndAreCounted() throws {
        let a = try answer(
            #"{"id":"x","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{\"city\":"}},{"id":"c2","function":{"name":"g","arguments":"[1]"}},{"id":"c 3","function":{"name":"h","arguments":"{\"ok\":true}"}}]},"finish_reason":"stop"}]}"#
        )
        let decoded = try AnthropicSchema.Message.decode(a.body)
        #expect(
            decoded.content == [
                .toolUse(id: "c1", name: "f", input: .object([:])), .toolUse(id: "c2", name: "g", input: .object([:])),
                .toolUse(id: "c_3", name: "h", input: .object(["ok": .bool(true)])),
            ])
        #expect(a.brokenToolCalls == 2)
        // Some upstreams end a tool call answer with "stop".
        #expect(a.stopReason == "tool_use")
    }

    @Test(arguments: [
        ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"), ("function_call", "tool_use"),
    ])
    func finishReasons(finish: String, expected: String) throws {
        let a = try answer(#"{"id":"x","choices":[{"message":{"role":"assistant","content":"t"},"finish_reason":"\#(finish)"}]}"#)
        #expect(a.stopReason == expected)
    }

    @Test func aStopSequenceIsReportedWhenTheUpstreamNamesIt() throws {
        // vLLM names the matched sequence in the choice's stop_reason.
        let vllm = try answer(
            #"{"id":"x","choices":[{"message":{"role":"assistant","content":"1, 2, 3"},"finish_reason":"stop","stop_reason":"END"}]}"#, stop: ["HALT", "END"])
        #expect(text(vllm).contains(#""stop_reason":"stop_sequence","stop_sequence":"END""#))
        // OpenRouter passes the provider's reason; with one sequence requested it can only be that one.
        let one = try answer(
            #"{"id":"x","choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop","native_finish_reason":"stop_sequence"}]}"#, stop: ["END"])
        #expect(text(one).contains(#""stop_reason":"stop_sequence","stop_sequence":"END""#))
        let two = try answer(
            #"{"id":"x","choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop","native_finish_reason":"stop_sequence"}]}"#,
            stop: ["END", "HALT"])
        #expect(text(two).contains(#""stop_reason":"stop_sequence","stop_sequence":null"#))
        // A plain stop, or a stop_reason that is not a requested sequence (a token id), is end_turn.
        let plain = try answer(#"{"id":"x","choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop","stop_reason":128009}]}"#, stop: ["END"])
        #expect(text(plain).contains(#""stop_reason":"end_turn","stop_sequence":null"#))
    }

    @Test func withoutUsageTheEstimatesAreReported() throws {
        let a = try answer(#"{"id":"x","choices":[{"message":{"role":"assistant","content":"abcdef"},"finish_reason":"stop"}]}"#, estimate: 42)
        #expect(text(a).hasSuffix(#""usage":{"input_tokens":42,"output_tokens":2}}"#))
    }

    @Test func aRefusalIsText() throws {
        let a = try answer(#"{"id":"x","choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#)
        #expect(text(a).contains(#""content":[{"type":"text","text":"I can't help with that."}],"stop_reason":"refusal""#))
    }

    @Test func anAnswerWithoutAnIdGetsAStableOne() throws {
        let body = #"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#
        let first = try AnthropicSchema.Message.decode(try answer(body).body).id
        let second = try AnthropicSchema.Message.decode(try answer(body).body).id
        #expect(first == second)
        #expect(first.hasPrefix("msg_") && first.count == 28)
    }

    /// The strict decoder itself: what Anthropic's schema requires, it requires.
    @Test(arguments: [
        #"{"id":"m","type":"message","role":"assistant","model":"a","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
        #"{"id":"m","type":"message","role":"assistant","model":"a","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1}}"#,
        #"{"id":"m","type":"message","role":"assistant","model":"a","content":[{"type":"tool_use","id":"t","name":"f","input":"{}"}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
        #"{"id":"m","type":"message","role":"assistant","model":"a","content":[{"type":"image"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
        #"{"id":"m","type":"message","role":"assistant","model":"a","content":[],"stop_reason":"stop","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
        #"{"type":"message","role":"assistant","model":"a","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#,
    ])
    func theSchemaIsStrict(body: String) {
        #expect(throws: (any Error).self) { try AnthropicSchema.Message.decode(Array(body.utf8)) }
    }

    @Test(arguments: [
        "not json",
        #"{"error":{"message":"boom"}}"#,
        #"{"id":"x","choices":[]}"#,
        #"{"id":"x","choices":[{"error":{"message":"late"},"message":{"role":"assistant","content":"a"},"finish_reason":"error"}]}"#,
        #"[{"id":"x"}]"#,
    ])
    func notAnAnswer(body: String) {
        #expect(AnthropicAnswer.translate(completion: Array(body.utf8), model: "m") == nil)
    }
}
