import Foundation
import Testing

@testable import SwitchyardCore

/// Embeddings requests: read once for the model and the largest input; routes hold one kind of model.
struct EmbeddingRequestScanTests {
    @Test func aStringOrAnArrayOfStringsIsReadForItsLargestInput() throws {
        let one = try EmbeddingRequestScan.scan(Array(#"{"model":"embed","input":"twelve chars"}"#.utf8))
        #expect(one.model == "embed" && one.messageCount == 1 && one.estimatedPromptTokens == 4 && one.maxTokens == 0)
        let body = #"{ "input": ["a", "a much longer input than the first"], "model" : "embed", "dimensions": 8 }"#
        let many = try EmbeddingRequestScan.scan(Array(body.utf8))
        #expect(many.messageCount == 2)
        #expect(many.estimatedPromptTokens == TokenEstimate.TextCost("a much longer input than the first").tokens)
        #expect(String(decoding: Array(body.utf8)[many.modelRange], as: UTF8.self) == #""embed""#)
        #expect(Array(body.utf8)[many.objectEnd] == UInt8(ascii: "}"))
        #expect(many.fields == ["input", "model", "dimensions"])
    }

    @Test func tokenIdsCountOneTokenEach() throws {
        let flat = try EmbeddingRequestScan.scan(Array(#"{"model":"e","input":[1,2,3,4]}"#.utf8))
        #expect(flat.messageCount == 1 && flat.estimatedPromptTokens == 4)
        let nested = try EmbeddingRequestScan.scan(Array(#"{"model":"e","input":[[1,2],[3,4,5]]}"#.utf8))
        #expect(nested.messageCount == 2 && nested.estimatedPromptTokens == 3)
    }

    @Test(arguments: [
        (#"{"input":"x"}"#, "'model' is required"),
        (#"{"model":"e"}"#, "'input' is required"),
        (#"{"model":"e","input":[]}"#, "'input' must not be empty"),
        (#"{"model":"e","input":{"text":"x"}}"#, "'input' must be a string, an array of strings"),
        (#"{"model":"e","input":[true]}"#, "'input' must be a string, an array of strings"),
        (#"{"model":7,"input":"x"}"#, "'model' must be a string"),
        (#"{"model":"e","input":"x","stream":true}"#, "embeddings are not streamed"),
        (#"{"model":"e","input":"x""#, "not valid JSON"),
        (#"["x"]"#, "must be a JSON object"),
        ("", "the body is empty"),
    ])
    func badRequestsAreRefusedWithAClearMessage(body: String, expected: String) {
        #expect(throws: RequestScanError.self) { _ = try EmbeddingRequestScan.scan(Array(body.utf8)) }
        do {
            _ = try EmbeddingRequestScan.scan(Array(body.utf8))
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func aRouteMixingChatAndEmbeddingModelsIsRefused() throws {
        let yaml = Fixtures.yaml.replacingOccurrences(
            of: "routes:\n",
            with: "  embed-a: { provider: openrouter, upstream: vendor/embed, context: 8192, kind: embedding }\nroutes:\n  embed: { models: [embed-a] }\n  mixed: { models: [small-fast, embed-a] }\n")
        #expect(throws: ConfigError.self) { _ = try Fixtures.table(yaml) }
        do {
            _ = try Fixtures.table(yaml)
        } catch let errors as ConfigError {
            #expect(errors.description.contains("routes.mixed.models: 'embed-a' is an embedding model and 'small-fast' a chat one"), "\(errors)")
        }
        let fine = try Fixtures.table(yaml.replacingOccurrences(of: "  mixed: { models: [small-fast, embed-a] }\n", with: ""))
        #expect(fine.route(named: "embed")?.kind == .embedding)
        #expect(fine.target(named: "embed-a")?.kind == .embedding)
        #expect(fine.route(named: "auto")?.kind == .chat)
    }
}
