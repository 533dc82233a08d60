import Foundation

/// An embeddings request as the fake reads it, and its deterministic answer: the same input always gives the
/// same vector, so tests and bench can check an answer passed through byte for byte.
struct FakeEmbeddingRequest: Sendable {
    /// The request as the fake's faults, quotas and log see any request (no messages, no output).
    var request: FakeChatRequest
    var inputs: [String]
    var dimensions: Int

    static let defaultDimensions = 8

    /// Parses a body; nil with a reason when it is not an embeddings request.
    static func parse(_ body: Data) -> (FakeEmbeddingRequest?, String?) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return (nil, "We could not parse the JSON body of your request.")
        }
        guard let model = object["model"] as? String else { return (nil, "you must provide a model parameter") }
        let inputs: [String]
        switch object["input"] {
        case let text as String: inputs = [text]
        case let texts as [String]: inputs = texts
        case let ids as [Int]: inputs = [ids.map(String.init).joined(separator: " ")]
        case let lists as [[Int]]: inputs = lists.map { $0.map(String.init).joined(separator: " ") }
        default: return (nil, "'input' must be a string or an array")
        }
        guard !inputs.isEmpty else { return (nil, "'input' must not be empty") }
        let dimensions = min(max(object["dimensions"] as? Int ?? defaultDimensions, 1), 4096)
        let tokens = inputs.reduce(0) { $0 + ($1.utf8.count + 3) / 4 }
        let request = FakeChatRequest(
            model: model, stream: false, includeUsage: false, maxTokens: nil, promptText: inputs.joined(separator: "\n"), prefill: nil,
            promptTokens: tokens, bodyBytes: body.count)
        return (FakeEmbeddingRequest(request: request, inputs: inputs, dimensions: dimensions), nil)
    }

    /// A vector of `dimensions` values in -1…1 from the input's FNV-1a hash.
    static func vector(for input: String, dimensions: Int) -> [Double] {
        (0..<dimensions).map { i in
            let hash = FakeAnswer.fnv1a("\(i):\(input)")
            return Double(Int(hash % 2_000_001) - 1_000_000) / 1_000_000
        }
    }

    /// OpenAI's `list` of `embedding` objects, with usage.
    static func answer(_ parsed: FakeEmbeddingRequest) -> String {
        let data = parsed.inputs.enumerated().map { index, input in
            let values = vector(for: input, dimensions: parsed.dimensions).map { String(format: "%.6f", $0) }.joined(separator: ",")
            return #"{"object":"embedding","index":\#(index),"embedding":[\#(values)]}"#
        }
        let tokens = parsed.request.promptTokens
        return #"{"object":"list","data":[\#(data.joined(separator: ","))],"model":"\#(FakeRender.escape(parsed.request.model))","usage":{"prompt_tokens":\#(tokens),"total_tokens":\#(tokens)}}"#
    }
}
