import Testing

@testable import SwitchyardCore

struct AnthropicStreamTests {
    static func chunk(_ choices: String, usage: String? = nil, id: String = "gen-1") -> String {
        #"{"id":"\#(id)","object":"chat.completion.chunk","created":1,"model":"up/model","choices":\#(choices)\#(usage.map { #","usage":\#($0)"# } ?? "")}"#
    }

    static func delta(_ delta: String, finish: String? = nil, extra: String = "") -> String {
        chunk(#"[{"index":0,"delta":\#(delta),"finish_reason":\#(finish.map { "\"\($0)\"" } ?? "null")\#(extra)}]"#)
    }

    /// Feeds each event; returns what each gave, as text.
    func run(_ stream: inout AnthropicStream, _ events: [String]) -> [String] {
        events.map { String(decoding: stream.feed(Array($0.utf8)), as: UTF8.self) }
    }

    func fold(_ text: String) throws -> AnthropicSchema.Folded {
        try AnthropicSchema.Folded(AnthropicSchema.events(Array(text.utf8)))
    }

    @Test func aTextStreamWithUsageAfterTheFinish() throws {
        var stream = AnthropicStream(model: "auto", inputTokens: 7)
        let out = run(
            &stream,
            [
                Self.delta(#"{"role":"assistant","content":""}"#), Self.delta(#"{"content":"Hel"}"#), Self.delta(#"{"content":"lo"}"#),
                Self.delta("{}", finish: "stop"), Self.chunk("[]", usage: #"{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}"#),
            ])
        #expect(stream.isComplete && !stream.isClosed)
        let done = String(decoding: stream.feed(Array("[DONE]".utf8)), as: UTF8.self)
        #expect(stream.isClosed)
        #expect(
            out == [
                "event: message_start\n"
                    + #"data: {"type":"message_start","message":{"id":"msg_gen-1","type":"message","role":"assistant","model":"auto","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":0}}}"#
                    + "\n\nevent: ping\n" + #"data: {"type":"ping"}"# + "\n\n",
                "event: content_block_start\n" + #"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"# + "\n\n"
                    + "event: content_block_delta\n" + #"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"# + "\n\n",
                "event: content_block_delta\n" + #"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"# + "\n\n",
                "event: content_block_stop\n" + #"data: {"type":"content_block_stop","index":0}"# + "\n\n",
                "",
            ])
        #expect(
            done
                == "event: message_delta\n"
                + #"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2,"input_tokens":9}}"#
                + "\n\nevent: message_stop\n" + #"data: {"type":"message_stop"}"# + "\n\n")
        let folded = try fold(out.joined() + done)
        #expect(folded.complete && folded.text == "Hello" && folded.stopReason == "end_turn" && folded.outputTokens == 2)
        #expect(stream.feed(Array(Self.delta(#"{"content":"late"}"#).utf8)).isEmpty)
    }

    @Test func toolCallsBecomeWholeToolUseBlocks() throws {
        var stream = AnthropicStream(model: "quality", inputTokens: 30)
        let out = run(
            &stream,
            [
                Self.delta(#"{"role":"assistant","content":"Checking"}"#),
                Self.delta(#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}"#),
                Self.delta(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#),
                Self.delta(#"{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]}"#),
                Self.delta(#"{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"get_time","arguments":"{\"tz\":"}}]}"#),
                Self.delta("{}", finish: "tool_calls"),
            ])
        // The text block closes when the first tool call starts; the calls go out whole at the finish.
        #expect(out[1] == "event: content_block_stop\n" + #"data: {"type":"content_block_stop","index":0}"# + "\n\n")
        #expect(out[2].isEmpty && out[3].isEmpty && out[4].isEmpty)
        #expect(
            out[5]
                == "event: content_block_start\n"
                + #"data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_a","name":"get_weather","input":{}}}"# + "\n\n"
                + "event: content_block_delta\n"
                + #"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Paris\"}"}}"# + "\n\n"
                + "event: content_block_stop\n" + #"data: {"type":"content_block_stop","index":1}"# + "\n\n"
                + "event: content_block_start\n"
                + #"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_b","name":"get_time","input":{}}}"# + "\n\n"
                + "event: content_block_delta\n" + #"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#
                + "\n\n" + "event: content_block_stop\n" + #"data: {"type":"content_block_stop","index":2}"# + "\n\n")
        #expect(stream.brokenToolCalls == 1)
        // The upstream closed without [DONE] and without usage: the caller ends it; output tokens are estimated.
        let end = String(decoding: stream.finish(), as: UTF8.self)
        #expect(end.contains(#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":"#))
        let folded = try fold(out.joined() + end)
        #expect(folded.complete && folded.text == "Checking")
        #expect(folded.toolUses.map(\.id) == ["call_a", "call_b"])
        #expect(folded.toolUses.map(\.input) == [#"{"city": "Paris"}"#, "{}"])
    }

    @Test func toolCallPiecesWithoutAnIndexAreToldApartByTheirIds() throws {
        var stream = AnthropicStream(model: "m", inputTokens: 1)
        let out = run(
            &stream,
            [
                Self.delta(#"{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}"#),
                Self.delta(#"{"tool_calls":[{"function":{"arguments":"1}"}}]}"#),
                Self.delta(#"{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}"#),
                Self.delta("{}", finish: "stop"), "[DONE]",
            ])
        let folded = try fold(out.joined())
        #expect(folded.toolUses.map(\.name) == ["f", "g"])
        #expect(folded.toolUses.map(\.input) == [#"{"x":1}"#, "{}"])
        #expect(folded.stopReason == "tool_use")
    }

    @Test func textAfterAToolCallStartsANewBlockAfterIt() throws {
        var stream = AnthropicStream(model: "m", inputTokens: 1)
        let out = run(
            &stream,
            [
                Self.delta(#"{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}"#), Self.delta(#"{"content":"done"}"#),
                Self.delta("{}", finish: "stop"), "[DONE]",
            ])
        let events = try AnthropicSchema.events(Array(out.joined().utf8))
        #expect(
            events.map(\.name).filter { $0 != "ping" } == [
                "message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
                "content_block_stop", "message_delta", "message_stop",
            ])
        let folded = try AnthropicSchema.Folded(events)
        #expect(folded.complete && folded.text == "done" && folded.toolUses.count == 1)
        #expect(folded.blocks[0] == .toolUse(id: "a", name: "f", input: .object([:])) && folded.blocks[1] == .text(""))
    }

    @Test func aCutStreamEndsWithAnErrorEventNeverAMessageStop() throws {
        var stream = AnthropicStream(model: "auto", inputTokens: 3)
        let out = run(&stream, [Self.delta(#"{"content":"Half an ans"}"#), "[DONE]"])
        #expect(stream.hasStarted && !stream.isComplete && !stream.isClosed)
        #expect(out[1].isEmpty)
        #expect(stream.finish().isEmpty)
        let failed = String(decoding: stream.fail(message: "every candidate failed", type: "overloaded_error"), as: UTF8.self)
        #expect(failed == "event: error\n" + #"data: {"type":"error","error":{"type":"overloaded_error","message":"every candidate failed"}}"# + "\n\n")
        #expect(stream.isClosed)
        #expect(stream.fail(message: "again").isEmpty)
        let folded = try fold(out.joined() + failed)
        #expect(!folded.complete && folded.error?.type == "overloaded_error" && folded.text == "Half an ans")
    }

    @Test func aFailureAfterTheEndSendsNothing() {
        var stream = AnthropicStream(model: "m", inputTokens: 1)
        _ = run(&stream, [Self.delta(#"{"content":"a"}"#, finish: "stop"), "[DONE]"])
        #expect(stream.isClosed)
        #expect(stream.fail(message: "late").isEmpty)
    }

    @Test func malformedAndUpstreamErrorEventsGiveNothing() {
        var stream = AnthropicStream(model: "m", inputTokens: 1)
        let out = run(
            &stream,
            [
                "not json", #"{"error":{"message":"provider down","code":502}}"#,
                Self.delta("{}", finish: "error", extra: #","error":{"message":"cut"}"#),
            ])
        #expect(out == ["", "", ""])
        #expect(!stream.hasStarted && !stream.isComplete)
    }

    @Test func aStopSequenceNamedByTheUpstream() throws {
        var stream = AnthropicStream(model: "m", inputTokens: 1, stopSequences: ["END"])
        let out = run(&stream, [Self.delta(#"{"content":"1 2 3"}"#), Self.delta("{}", finish: "stop", extra: #","stop_reason":"END""#), "[DONE]"])
        let folded = try fold(out.joined())
        #expect(folded.stopReason == "stop_sequence" && folded.stopSequence == "END")
    }

    @Test(arguments: [("length", "max_tokens"), ("content_filter", "refusal"), ("stop", "end_turn")])
    func finishReasons(finish: String, expected: String) throws {
        var stream = AnthropicStream(model: "m", inputTokens: 1)
        let out = run(&stream, [Self.delta(#"{"content":"x"}"#, finish: finish), "[DONE]"])
        #expect(try fold(out.joined()).stopReason == expected)
    }

    /// The fold itself refuses what the SDKs' stream helpers would choke on.
    @Test(arguments: [
        #"{"type":"message_stop"}"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"a"}}"#,
        #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}"#,
    ])
    func theFoldIsStrict(event: String) {
        let name = event.split(separator: "\"")[3]
        let start = #"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"a","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":0}}}"#
        let bytes = Array("event: message_start\ndata: \(start)\n\nevent: \(name)\ndata: \(event)\n\n".utf8)
        #expect(throws: (any Error).self) { try AnthropicSchema.Folded(AnthropicSchema.events(bytes)) }
    }

    @Test func aCachedReplayTranslatesWhole() throws {
        let cached = CachedAnswer(
            id: "chatcmpl-9", created: 5, upstreamModel: "up/model", modelName: "fast", keyLabel: "k#1", content: "Cached words.", finishReason: "stop",
            usageJSON: #"{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}"#, body: nil)
        let replay = AnthropicStream.translate(sse: cached.sseEvents, model: "auto", inputTokens: 4)
        let events = try AnthropicSchema.events(replay)
        let folded = try AnthropicSchema.Folded(events)
        #expect(folded.complete && folded.text == "Cached words." && folded.outputTokens == 3)
        guard case .messageStart(let message) = events.first, case .ping = events[1] else {
            Issue.record("the replay does not begin with message_start and ping")
            return
        }
        #expect(message.id == "msg_chatcmpl-9" && message.model == "auto")

        let cut = AnthropicStream.translate(sse: Array("data: \(Self.delta(#"{"content":"a"}"#))\n\n".utf8), model: "auto", inputTokens: 1)
        let cutFolded = try AnthropicSchema.Folded(AnthropicSchema.events(cut))
        #expect(!cutFolded.complete && cutFolded.error?.type == "api_error")
    }
}
