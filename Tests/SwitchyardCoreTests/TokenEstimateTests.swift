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
        let s = try ChatRequestScan.scan(#"{"model":"m","max_completion_tokens":7,"messages":[{"role":"user","content":null}]}"#)
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
    ])
    func refusesWithAClearMessage(body: String, expected: String) {
        let error = #expect(throws: RequestScanError.self) { try ChatRequestScan.scan(body) }
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "no error")")
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
