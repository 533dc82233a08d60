import FakeUpstream
import Foundation
import Testing

/// Tool calls pass through untouched both ways, whole and streamed; a stream cut inside a tool call is
/// never continued (a prefill resumes text only) and ends with an error event.
@Suite struct ToolCallTests {
    static let tools = #"[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}]"#

    static func request(_ prompt: String, stream: Bool = false, messages extra: String = "") -> String {
        #"{"model":"auto","stream":\#(stream),"tools":\#(tools),"messages":[{"role":"user","content":"\#(prompt)"}\#(extra)]}"#
    }

    static func expectedArguments(_ prompt: String) -> String { FakeChatRequest.toolArguments(for: "user:" + prompt) }

    struct Completion: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable {
                struct Call: Decodable {
                    struct Function: Decodable { var name: String; var arguments: String }
                    var id: String
                    var type: String
                    var function: Function
                }
                var content: String?
                var tool_calls: [Call]?
            }
            var message: Message
            var finish_reason: String
        }
        var choices: [Choice]
    }

    @Test func aToolCallComesBackWholeWithItsArgumentsIntact() async throws {
        try await withHarness { h in
            let reply = try await h.post(Self.request("what is the weather in Lyon"))
            #expect(reply.status == 200, "\(reply.body)")
            let completion = try JSONDecoder().decode(Completion.self, from: Data(reply.body.utf8))
            let call = try #require(completion.choices.first?.message.tool_calls?.first)
            #expect(call.type == "function" && call.function.name == "get_weather")
            #expect(call.function.arguments == Self.expectedArguments("what is the weather in Lyon"))
            #expect(completion.choices.first?.finish_reason == "tool_calls")
            #expect(h.upstreamRequests().first?.action == "tool_call")
        }
    }

    @Test func aStreamedToolCallArrivesPieceByPiece() async throws {
        try await withHarness { h in
            let reply = try await h.post(Self.request("streamed weather please", stream: true))
            #expect(reply.status == 200)
            #expect(reply.events.last == "[DONE]")
            var arguments = ""
            var name: String?
            var finish: String?
            for event in reply.events.dropLast() {
                let chunk = try #require(try JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
                guard let choice = (chunk["choices"] as? [[String: Any]])?.first else { continue }
                if let reason = choice["finish_reason"] as? String { finish = reason }
                let calls = (choice["delta"] as? [String: Any])?["tool_calls"] as? [[String: Any]] ?? []
                for call in calls {
                    let function = call["function"] as? [String: Any]
                    if let n = function?["name"] as? String { name = n }
                    arguments += function?["arguments"] as? String ?? ""
                }
            }
            #expect(name == "get_weather" && finish == "tool_calls")
            #expect(arguments == Self.expectedArguments("streamed weather please"))
        }
    }

    @Test func aToolsResultIsAnsweredWithText() async throws {
        try await withHarness { h in
            let result = #",{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}"#
            let reply = try await h.post(Self.request("weather?", messages: result))
            let completion = try JSONDecoder().decode(Completion.self, from: Data(reply.body.utf8))
            #expect(completion.choices.first?.message.tool_calls == nil)
            #expect(completion.choices.first?.finish_reason == "stop")
        }
    }

    @Test func aStreamCutInsideAToolCallIsNotContinuedAndEndsWithAnErrorEvent() async throws {
        try await withHarness(script: "default: { fault: cut }") { h in
            let reply = try await h.post(Self.request("cut me off", stream: true))
            #expect(reply.status == 200)
            #expect(reply.events.last?.contains(#""code":"stream_interrupted""#) == true, "\(reply.events)")
            #expect(!reply.events.contains("[DONE]"))
            #expect(reply.events.contains { $0.contains("get_weather") }, "the call had begun")
            #expect(h.upstreamRequests().count == 1, "no continuation was asked for")
            // Not stored either: the same request goes upstream again.
            _ = try await h.post(Self.request("cut me off", stream: true))
            #expect(h.upstreamRequests().count == 2)
        }
    }
}
