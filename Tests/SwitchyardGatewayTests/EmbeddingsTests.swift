import FakeUpstream
import Foundation
import Testing

/// `POST /v1/embeddings`: routed over `kind: embedding` models with the chat path's keys, health, failover
/// and cache; the upstream's answer passes through byte for byte.
@Suite struct EmbeddingsTests {
    static let config = Harness.config.replacingOccurrences(
        of: "\nroutes:\n",
        with: """

              embed-a:  { provider: openrouter, upstream: "text-embedding-004", context: 2048, kind: embedding }
              embed-b:  { provider: openrouter, upstream: "nomic-embed-text", context: 8192, kind: embedding }
            routes:
              embed:     { prefer: listed, models: [embed-a, embed-b] }

            """)
    static let script = "models: { \"text-embedding-004\": 2048, \"nomic-embed-text\": 8192 }\n"

    static func body(_ input: String, model: String = "embed") -> String { #"{"model":"\#(model)","input":\#(input)}"# }

    @Test func aStringAndAListAreEmbeddedAndPassedThroughWithTheHeaders() async throws {
        try await withHarness(config: Self.config, script: Self.script) { h in
            let one = try await h.post(Self.body(#""hello""#), path: "/v1/embeddings")
            #expect(one.status == 200, "\(one.body)")
            #expect(one.header("x-switchyard-route") == "embed" && one.header("x-switchyard-model") == "embed-a")
            #expect(one.header("x-switchyard-attempts") == "1" && one.header("x-switchyard-cache") == "miss")
            #expect(one.header("x-switchyard-key")?.hasPrefix("openrouter#") == true)
            struct List: Decodable {
                struct Item: Decodable { var index: Int; var embedding: [Double] }
                var object: String
                var data: [Item]
                var model: String
            }
            let list = try JSONDecoder().decode(List.self, from: Data(one.body.utf8))
            #expect(list.object == "list" && list.data.count == 1 && list.data[0].embedding.count == 8)
            #expect(list.model == "text-embedding-004", "the upstream's own answer, model and all")
            let many = try await h.post(Self.body(#"["a", "b", "c"]"#), path: "/v1/embeddings")
            #expect(try JSONDecoder().decode(List.self, from: Data(many.body.utf8)).data.map(\.index) == [0, 1, 2])
            let sent = h.upstreamRequests()
            #expect(sent.count == 2 && sent.allSatisfy { $0.model == "text-embedding-004" })
        }
    }

    @Test func aFailingKeyFailsOverAndAnIdenticalRequestIsACacheHit() async throws {
        // A key the provider rejects: set aside, the next key tried at once, as for chat.
        let script = Self.script + "keys: { \(Harness.key(1)): invalid_key }\n"
        try await withHarness(config: Self.config, script: script) { h in
            var replies: [Harness.Reply] = []
            for i in 0..<4 where !h.upstreamRequests().contains(where: { $0.key == "openrouter#1" }) {
                let reply = try await h.post(Self.body(#""fail over \#(i)""#), path: "/v1/embeddings")
                #expect(reply.status == 200, "\(reply.body)")
                #expect(reply.header("x-switchyard-key") != "openrouter#1")
                replies.append(reply)
            }
            #expect(replies.last?.header("x-switchyard-attempts") == "2", "the rejected key, then another")
            #expect(h.keyState("openrouter#1") == "removed")
            let again = try await h.post(Self.body(#""fail over 0""#), path: "/v1/embeddings")
            #expect(again.header("x-switchyard-cache") == "hit" && again.body == replies.first?.body)
            #expect(h.upstreamRequests().filter { $0.action == "ok" }.count == replies.count, "the hit made no upstream call")
        }
    }

    @Test func theWrongKindOrABadInputIsA400ThatNeverReachesTheUpstream() async throws {
        try await withHarness(config: Self.config, script: Self.script) { h in
            let chatToEmbed = try await h.post(chat("hi", model: "embed"))
            #expect(chatToEmbed.status == 400 && chatToEmbed.body.contains("POST /v1/embeddings"), "\(chatToEmbed.body)")
            let embedToChat = try await h.post(Self.body(#""hi""#, model: "auto"), path: "/v1/embeddings")
            #expect(embedToChat.status == 400 && embedToChat.body.contains("kind: embedding"), "\(embedToChat.body)")
            let noInput = try await h.post(#"{"model":"embed"}"#, path: "/v1/embeddings")
            #expect(noInput.status == 400 && noInput.body.contains("'input' is required"))
            let badInput = try await h.post(Self.body("[true]"), path: "/v1/embeddings")
            #expect(badInput.status == 400 && badInput.body.contains(#""type":"invalid_request_error""#))
            #expect(h.upstreamRequests().isEmpty)
        }
    }

    @Test func anInputTooLongForTheFirstModelGoesToTheLongerOne() async throws {
        try await withHarness(config: Self.config, script: Self.script) { h in
            let long = String(repeating: "word ", count: 2000)
            let reply = try await h.post(Self.body("\"\(long)\""), path: "/v1/embeddings")
            #expect(reply.status == 200 && reply.header("x-switchyard-model") == "embed-b", "\(reply.body.prefix(300))")
        }
    }

    @Test func modelsListTheirKind() async throws {
        try await withHarness(config: Self.config, script: Self.script) { h in
            let body = try await h.get("/v1/models").body
            #expect(body.contains(#""id":"embed","object":"model","created":0,"owned_by":"switchyard","type":"route","kind":"embedding""#))
            #expect(body.contains(#""id":"embed-a","object":"model","created":0,"owned_by":"openrouter","type":"model","kind":"embedding""#))
            #expect(body.contains(#""type":"route","kind":"chat""#))
        }
    }
}
