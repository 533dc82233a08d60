import Testing
@testable import SwitchyardCore

struct TokenEstimateTests {
    @Test func shortASCII() throws {
        let s = try ChatRequestScan.scan(#"{"model":"auto","messages":[{"role":"user","content":"Hello there!"}]}"#)
        // 3 priming + 4 framing + ceil((4 role + 12 content) / 3) = 3 + 4 + 6
        #expect(s.estimatedPromptTokens == 13)
        #expect(s.model == "auto")
        #expect(s.messageCount == 1)
        #expect(s.lastRole == "user")
    }

    @Test func multiMessageAddsFramingPerMessage() throws {
        let one = TokenEstimate.messages([("user", "abc")])
        let three = TokenEstimate.messages([("system", "abc"), ("user", "abc"), ("assistant", "abc")])
        #expect(three - one >= 2 * TokenEstimate.perMessage)
    }

    @Test func longProseIsOverEstimatedNotUnder() {
        // ~4 characters a token is typical for English prose; the estimate must not fall below that.
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 1000)
        let estimate = TokenEstimate.messages([("user", text)])
        let typical = text.utf8.count / 4
        #expect(estimate >= typical)
        #expect(estimate <= text.utf8.count / 2)
    }

    @Test func cjkAndEmojiCostABytePerToken() {
        let cjk = String(repeating: "漢字", count: 100)  // 200 characters, 600 UTF-8 bytes
        #expect(TokenEstimate.messages([("user", cjk)]) == 3 + 4 + 2 + 600)
        let emoji = String(repeating: "😀", count: 10)  // 40 bytes
        #expect(TokenEstimate.messages([("user", emoji)]) == 3 + 4 + 2 + 40)
    }

    @Test func escapesAreChargedAsTheirDecodedText() throws {
        let plain = try ChatRequestScan.scan(#"{"model":"m","messages":[{"role":"user","content":"漢😀é"}]}"#)
        let escaped = try ChatRequestScan.scan(#"{"model":"m","messages":[{"role":"user","content":"\u6f22\ud83d\ude00\u00e9"}]}"#)
        #expect(plain.estimatedPromptTokens == escaped.estimatedPromptTokens)
    }

    @Test func contentPartsAndImages() throws {
        let s = try ChatRequestScan.scan(
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#
        )
        #expect(s.estimatedPromptTokens > TokenEstimate.perImage)
        // Every string of the parts is charged (58 ASCII bytes with the role: 20 tokens), and each
        // "image_url" in them counts as an image (the type and the key: 2).
        #expect(s.estimatedPromptTokens == 3 + 4 + 20 + 2 * TokenEstimate.perImage)
    }
}

struct ChatRequestScanTests {
    @Test func readsRoutingFields() throws {
        let body = #"{ "stream" : true, "model": "quality", "max_tokens": 100, "n": 1, "temperature": 0.2, "messages": [{"role":"system","content":"s"},{"role":"assistant","content":"pre"}], "extra": {"a": [1, 2.5e3, null, false]} }"#
        let s = try ChatRequestScan.scan(body)
        #expect(s.model == "quality")
        #expect(s.stream)
        #expect(s.maxTokens == 100)
        #expect(s.n == 1)
        #expect(s.messageCount == 2)
        #expect(s.lastRole == "assistant")
        #expect(s.fields == ["stream", "model", "max_tokens", "n", "temperature", "messages", "extra"])
        let bytes = Array(body.utf8)
        #expect(String(decoding: bytes[s.modelRange], as: UTF8.self) == "\"quality\"")
        #expect(bytes[s.objectEnd] == UInt8(ascii: "}"))
    }

    @Test func maxCompletionTokensCounts() throws {
        let s = try ChatRequestScan.scan(#"{"model":"m","max_completion_tokens":7,"messages":[{"role":"user","content":"x"}]}"#)
        #expect(s.maxTokens == 7)
    }

    @Test(arguments: [
        ("", "empty"),
        ("[]", "JSON object"),
        (#"{"messages":[{"role":"user","content":"x"}]}"#, "'model' is required"),
        (#"{"model":"m"}"#, "'messages' is required"),
        (#"{"model":"m","messages":[]}"#, "at least one message"),
        (#"{"model":"m","messages":"hi"}"#, "must be an array"),
        (#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#, "'model' must be a string"),
        (#"{"model":"m","messages":[{"content":"x"}]}"#, "no 'role'"),
        (#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "'content' must be"),
        (#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}"#, "'stream' must be true or false"),
        (#"{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"x"}]}"#, "whole number"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}]"#, "ended early"),
        (#"{"model":"m","messages":[{"role":"user","content":"x"}]} trailing"#, "after the JSON object"),
        (#"{"model":"m","messages":[{"role":"user","content":"\x"}]}"#, "bad escape"),
        (#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#, "surrogate"),
        (
            #"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"wizard","content":"x"}]}"#,
            "messages[1].role: 'wizard' is not one of system, developer, user, assistant, tool, function (at byte 63)"
        ),
        (#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"42"}]}"#, "messages[1].tool_call_id: required for a 'tool' message"),
        (#"{"model":"m","messages":[{"role":"tool","tool_call_id":7,"content":"42"}]}"#, "messages[0].tool_call_id: must be a string"),
        (
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"video","video":{}}]}]}"#,
            "messages[0].content[1].type: 'video' is not one of text, image_url, input_audio, file, refusal"
        ),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"vid\u0065o"}]}]}"#, "messages[0].content[0].type: 'video' is not one of"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]}"#, "messages[0].content[0]: a content part needs a 'type'"),
        (#"{"model":"m","messages":[{"role":"user","content":["a"]}]}"#, "messages[0].content[0]: a content part must be an object"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":5}]}]}"#, "messages[0].content[0].type: must be a string"),
        (
            #"{"model":"m","messages":[{"role":"user","content":null}]}"#,
            "messages[0].content: null is only allowed in an assistant message with 'tool_calls' or 'function_call'"
        ),
        (#"{"model":"m","messages":[{"role":"assistant","content":null}]}"#, "messages[0].content: null is only allowed"),
        (#"{"model":"m","messages":[{"role":"assistant"}]}"#, "messages[0].content: required, except in an assistant message with 'tool_calls'"),
        (#"{"model":"m","messages":[{"role":"user","tool_calls":[]}]}"#, "messages[0].content: required"),
    ])
    func refusesWithAClearMessage(body: String, expected: String) {
        let error = #expect(throws: RequestScanError.self) { try ChatRequestScan.scan(body) }
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "no error")")
    }

    @Test func acceptsEveryRoleAndPartTheAPIKnows() throws {
        let body = #"""
            {"model":"m","messages":[
             {"role":"developer","content":"d"},{"role":"system","content":[{"type":"text","text":"s"}]},
             {"role":"user","content":[{"type":"text","text":"t"},{"type":"image_url","image_url":{"url":"u"}},{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}},{"type":"file","file":{"file_id":"f"}},{"type":"t\u0065xt","text":"e"}]},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"42"},
             {"role":"assistant","function_call":{"name":"f","arguments":"{}"}},
             {"role":"function","name":"f","content":"42"},
             {"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},
             {"role":"user","content":[]}
            ]}
            """#
        let s = try ChatRequestScan.scan(body)
        #expect(s.messageCount == 9)
        #expect(s.lastRole == "user")
    }

    @Test func refusesInvalidUTF8() {
        var bytes = Array(#"{"model":"m","messages":[{"role":"user","content":"ab"}]}"#.utf8)
        bytes.insert(0xC3, at: bytes.count - 5)
        bytes.insert(0x28, at: bytes.count - 5)
        let error = #expect(throws: RequestScanError.self) { try ChatRequestScan.scan(bytes) }
        #expect(error?.message.contains("UTF-8") == true)
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let body = #"{"model":"m","messages":[{"role":"user","content":"x"}],"x":"# + deep + "}"
        let error = #expect(throws: RequestScanError.self) { try ChatRequestScan.scan(body) }
        #expect(error?.message.contains("nested deeper") == true)
    }
}
