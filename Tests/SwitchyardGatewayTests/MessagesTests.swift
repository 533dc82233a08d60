import FakeUpstream
import Foundation
import Testing

/// `POST /v1/messages`: Anthropic's Messages API in, the chat path's routing, failover, cache and continuation,
/// Anthropic's shapes and events out.
@Suite struct MessagesTests {
    static let fast = "meta-llama/llama-3.1-8b-instruct:free"

    static func request(_ prompt: String, stream: Bool = false, maxTokens: Int? = 256, extra: String = "") -> String {
        let max = maxTokens.map { #","max_tokens":\#($0)"# } ?? ""
        return #"{"model":"auto","stream":\#(stream)\#(max),"messages":[{"role":"user","content":"\#(prompt)"}]\#(extra)}"#
    }

    static func post(_ h: Harness, _ body: String, headers: [(String, String)] = []) async throws -> Harness.Reply {
        try await h.post(body, headers: [("anthropic-version", "2023-06-01")] + headers, path: "/v1/messages")
    }

    struct Message: Decodable {
        struct Block: Decodable {
            var type: String
            var text: String?
            var name: String?
            var input: [String: String]?
        }
        struct Usage: Decodable { var input_tokens: Int; var output_tokens: Int }
        var id: String
        var type: String
        var role: String
        var model: String
        var content: [Block]
        var stop_reason: String?
        var usage: Usage
    }

    /// An Anthropic event stream: its event names in order, the text of its deltas, and its error, if any.
    struct Events {
        var names: [String] = []
        var text = ""
        var error: [String: Any]?

        init(_ body: String) throws {
            for block in body.components(separatedBy: "\n\n") where !block.isEmpty {
                let lines = block.split(separator: "\n")
                let name = lines.first { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) } ?? ""
                let data = lines.first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) } ?? "{}"
                let json = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
                #expect(json["type"] as? String == name, "each event's name is its data's type")
                names.append(name)
                if name == "content_block_delta", let delta = json["delta"] as? [String: Any], let piece = delta["text"] as? String { text += piece }
                if name == "error" { error = json["error"] as? [String: Any] }
            }
        }
    }

    @Test func aMessageIsAnsweredInAnthropicsShape() async throws {
        try await withHarness { h in
            let reply = try await Self.post(h, Self.request("hello from anthropic"))
            #expect(reply.status == 200, "\(reply.body)")
            let message = try JSONDecoder().decode(Message.self, from: Data(reply.body.utf8))
            #expect(message.type == "message" && message.role == "assistant" && message.model == "auto")
            #expect(message.id.hasPrefix("msg_"))
            #expect(message.content.first?.type == "text" && message.content.first?.text == expectedAnswer("hello from anthropic"))
            #expect(message.stop_reason == "end_turn" && message.usage.output_tokens > 0)
            #expect(reply.header("x-switchyard-route") == "auto" && reply.header("x-switchyard-cache") == "miss")
            // The same request again is a hit, answered in the same shape.
            let again = try await Self.post(h, Self.request("hello from anthropic"))
            #expect(again.header("x-switchyard-cache") == "hit")
            #expect(try JSONDecoder().decode(Message.self, from: Data(again.body.utf8)).content.first?.text == message.content.first?.text)
        }
    }

    @Test func aStreamIsAnthropicsEventSequence() async throws {
        try await withHarness { h in
            let reply = try await Self.post(h, Self.request("stream it please", stream: true))
            #expect(reply.status == 200 && reply.header("content-type") == "text/event-stream")
            let events = try Events(reply.body)
            #expect(events.names.first == "message_start" && events.names.last == "message_stop", "\(events.names)")
            #expect(events.names.contains("content_block_start") && events.names.contains("message_delta"))
            #expect(events.text == expectedAnswer("stream it please"))
        }
    }

    @Test(arguments: ["cut", "stall", "stream_error"])
    func aStreamCutMidwayIsContinuedIntoOneCompleteAnswer(fault: String) async throws {
        let script = #"models_behavior: { "\#(Self.fast)": { fault: \#(fault), after_tokens: 5 } }"#
        try await withHarness(script: script) { h in
            let prompt = "continue the message after \(fault)"
            let reply = try await Self.post(h, Self.request(prompt, stream: true))
            let events = try Events(reply.body)
            #expect(events.error == nil, "\(events.names)")
            #expect(events.text == expectedAnswer(prompt))
            #expect(events.names.last == "message_stop")
            #expect(h.fake.log().perAction["prefill"] == 1)
        }
    }

    @Test func aStreamNoModelCanContinueEndsWithAnErrorEventNotMessageStop() async throws {
        // The route's only model takes no prefill: nothing can continue the cut answer.
        try await withHarness(script: "default: { fault: cut, after_tokens: 3 }") { h in
            let body = Self.request("no way to finish", stream: true).replacingOccurrences(of: #""model":"auto""#, with: #""model":"noprefill""#)
            let reply = try await Self.post(h, body)
            let events = try Events(reply.body)
            #expect(events.names.first == "message_start")
            #expect(events.names.last == "error" && !events.names.contains("message_stop"), "\(events.names)")
        }
    }

    @Test func aToolIsCalledWithAToolUseBlock() async throws {
        let tools = #","tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"query":{"type":"string"}}}}]"#
        try await withHarness { h in
            let reply = try await Self.post(h, Self.request("weather in Lyon", extra: tools))
            let message = try JSONDecoder().decode(Message.self, from: Data(reply.body.utf8))
            let call = try #require(message.content.first { $0.type == "tool_use" })
            #expect(call.name == "get_weather" && call.input?["query"]?.isEmpty == false)
            #expect(message.stop_reason == "tool_use")
        }
    }

    @Test func aFailingKeyAndAFallenModelAreFailedOverAsForChat() async throws {
        // Key 1 rejected by the provider; the route's first model failing on every key.
        let script = #"keys: { \#(Harness.key(1)): invalid_key }\#nmodels_behavior: { "\#(Self.fast)": error_503 }"#
        try await withHarness(script: script) { h in
            for i in 0..<4 {
                let reply = try await Self.post(h, Self.request("fail over \(i)"))
                #expect(reply.status == 200, "\(reply.body)")
                #expect(reply.header("x-switchyard-model") != "fast-8k" && reply.header("x-switchyard-key") != "openrouter#1")
                let message = try JSONDecoder().decode(Message.self, from: Data(reply.body.utf8))
                #expect(message.content.first?.text == expectedAnswer("fail over \(i)"))
            }
            #expect(h.keyState("openrouter#1") == "removed" || !h.upstreamRequests().contains { $0.key == "openrouter#1" })
        }
    }

    @Test func errorsAreAnthropicsShapeAndStatus() async throws {
        try await withHarness(script: "default: { fault: rate_limit, retry_after: 30 }", tokens: ["sk-client"]) { h in
            let noKey = try await Self.post(h, Self.request("x"))
            #expect(noKey.status == 401 && noKey.body.contains(#""type":"authentication_error""#), "\(noKey.body)")
            let auth = [("x-api-key", "sk-client")]
            let noMax = try await Self.post(h, Self.request("x", maxTokens: nil), headers: auth)
            #expect(noMax.status == 400 && noMax.body.hasPrefix(#"{"type":"error","error":{"type":"invalid_request_error""#), "\(noMax.body)")
            #expect(noMax.body.contains("max_tokens"))
            #expect(h.upstreamRequests().isEmpty, "refusals reach nothing upstream")
            _ = try await Self.post(h, Self.request("busy"), headers: auth)
            let busy = try await Self.post(h, Self.request("busy"), headers: auth)
            #expect(busy.status == 529 && busy.body.contains(#""type":"overloaded_error""#), "\(busy.status) \(busy.body)")
            #expect(Int(busy.header("retry-after") ?? "") ?? 0 > 0)
        }
    }

    /// The channel handler answers on the connection's loop; a request with a `Connection` header takes
    /// Hummingbird's path. Both give the same shapes, headers and errors.
    @Test func bothPathsAnswerAlike() async throws {
        try await withHarness(tokens: ["sk-client"]) { h in
            let auth = [("x-api-key", "sk-client")]
            let full = auth + [("connection", "keep-alive")]
            for (path, headers) in [("loop", auth), ("full", full)] {
                let prompt = "answered on the \(path) path"
                let plain = try await Self.post(h, Self.request(prompt), headers: headers)
                #expect(plain.status == 200 && plain.header("x-switchyard-cache") == "miss", "\(path): \(plain.body)")
                let message = try JSONDecoder().decode(Message.self, from: Data(plain.body.utf8))
                #expect(message.content.first?.text == expectedAnswer(prompt) && message.stop_reason == "end_turn", "\(path)")

                let streamed = try await Self.post(h, Self.request(prompt + " streamed", stream: true), headers: headers)
                #expect(streamed.header("content-type") == "text/event-stream" && streamed.header("x-switchyard-route") == "auto", "\(path)")
                let events = try Events(streamed.body)
                #expect(events.names.first == "message_start" && events.names.last == "message_stop", "\(path): \(events.names)")
                #expect(events.text == expectedAnswer(prompt + " streamed"), "\(path)")

                // A hit replayed as a stream, and a refusal made before the body is read.
                let replay = try await Self.post(h, Self.request(prompt, stream: true), headers: headers)
                let replayed = try Events(replay.body)
                #expect(replay.header("x-switchyard-cache") == "hit" && replayed.text == expectedAnswer(prompt), "\(path)")
                let refused = try await Self.post(h, Self.request(prompt), headers: path == "loop" ? [] : [("connection", "keep-alive")])
                #expect(refused.status == 401 && refused.body.contains(#""type":"authentication_error""#), "\(path): \(refused.body)")
                let invalid = try await Self.post(h, #"{"model":"auto","messages":"not a list","max_tokens":5}"#, headers: headers)
                #expect(invalid.status == 400 && invalid.body.hasPrefix(#"{"type":"error","error":{"type":"invalid_request_error""#), "\(path)")
            }
        }
    }

    @Test func countTokensAnswersFromTheGatewaysEstimate() async throws {
        try await withHarness { h in
            let reply = try await h.post(Self.request("count these words"), path: "/v1/messages/count_tokens")
            #expect(reply.status == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
            #expect((json["input_tokens"] as? Int ?? 0) > 0)
            #expect(h.upstreamRequests().isEmpty)
        }
    }
}
