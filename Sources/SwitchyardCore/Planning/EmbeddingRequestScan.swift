/// What routing needs from an embeddings request (`POST /v1/embeddings`), read in one pass: the `model` and
/// where it sits (for the in-place rewrite), and the estimated tokens of its largest input, which must fit
/// the model's context on its own. It fills the same summary a chat request does, with no messages and no
/// output tokens (`maxTokens` 0), so planning, failover and the body rewrite are shared.
public enum EmbeddingRequestScan {
    /// Inputs in one request, at most (OpenAI's own limit).
    public static let maxInputs = 2048

    public static func scan(_ bytes: UnsafeRawBufferPointer) throws(RequestScanError) -> ChatRequestSummary {
        var reader = JSONReader(bytes: bytes)
        reader.skipSpace()
        guard reader.peek() == UInt8(ascii: "{") else {
            throw RequestScanError(message: bytes.isEmpty ? "the body is empty; send a JSON object" : "the body must be a JSON object", offset: nil)
        }
        var summary = ChatRequestSummary()
        summary.maxTokens = 0
        var inputs: Inputs?
        var shapeError: String?
        let valid = reader.object(depth: 0) { r, key in
            summary.fields.append(key)
            switch key {
            case "model":
                let start = r.i
                guard r.peek() == UInt8(ascii: "\""), let model = r.string() else {
                    shapeError = shapeError ?? "'model' must be a string"
                    return r.skipValue(depth: 1)
                }
                summary.model = model
                summary.modelRange = start..<r.i
                return true
            case "input":
                switch Inputs.read(&r) {
                case .success(let read): inputs = read
                case .failure(let problem): shapeError = shapeError ?? problem.message
                }
                return true
            case "stream":
                shapeError = shapeError ?? "embeddings are not streamed; leave 'stream' out"
                return r.skipValue(depth: 1)
            default:
                return r.skipValue(depth: 1)
            }
        }
        guard valid else { throw RequestScanError(message: "the body is not valid JSON", offset: reader.i) }
        summary.objectEnd = reader.i - 1
        reader.skipSpace()
        guard reader.i == bytes.count else { throw RequestScanError(message: "unexpected data after the JSON object", offset: reader.i) }
        if let shapeError { throw RequestScanError(message: shapeError, offset: nil) }
        guard summary.fields.contains("model") else { throw RequestScanError(message: "'model' is required: name an embedding route or model", offset: nil) }
        if summary.model.isEmpty { throw RequestScanError(message: "'model' must not be empty", offset: nil) }
        guard let inputs else { throw RequestScanError(message: "'input' is required: a string or an array of strings", offset: nil) }
        summary.messageCount = inputs.count
        summary.estimatedPromptTokens = inputs.largestTokens
        return summary
    }

    public static func scan(_ bytes: [UInt8]) throws(RequestScanError) -> ChatRequestSummary {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(RequestScanError) in try scan(raw) } }
        return try result.get()
    }

    /// The inputs' count and the largest one's estimated tokens.
    struct Inputs {
        var count = 0
        var largestTokens = 0

        static let shape = "'input' must be a string, an array of strings, an array of token ids or an array of token id arrays"

        /// Reads `input`: a string, or a non-empty array of strings, of token ids, or of token id arrays.
        static func read(_ r: inout JSONReader) -> Result<Inputs, RequestScanError> {
            var inputs = Inputs()
            if r.peek() == UInt8(ascii: "\"") {
                guard let text = r.string() else { return .failure(RequestScanError(message: shape, offset: r.i)) }
                inputs.add(tokens: TokenEstimate.TextCost(text).tokens)
                return .success(inputs)
            }
            guard r.peek() == UInt8(ascii: "[") else { return failure(&r) }
            var wellShaped = true
            let valid = r.array(depth: 1) { element in
                switch element.peek() {
                case UInt8(ascii: "\""):
                    guard let text = element.string() else { return false }
                    inputs.add(tokens: TokenEstimate.TextCost(text).tokens)
                case UInt8(ascii: "["):
                    var ids = 0
                    let ok = element.array(depth: 2) { id in
                        ids += 1
                        return id.number()
                    }
                    guard ok else { return false }
                    inputs.add(tokens: ids)
                default:
                    // A token id of a single tokenized input: the whole array is one input.
                    guard element.number() else {
                        wellShaped = false
                        return element.skipValue(depth: 2)
                    }
                    if inputs.count == 0 { inputs.count = 1 }
                    inputs.largestTokens += 1
                }
                return true
            }
            guard valid, wellShaped else { return .failure(RequestScanError(message: shape, offset: nil)) }
            guard inputs.count > 0 else { return .failure(RequestScanError(message: "'input' must not be empty", offset: nil)) }
            guard inputs.count <= maxInputs else {
                return .failure(RequestScanError(message: "'input' holds \(inputs.count) inputs; at most \(maxInputs) a request", offset: nil))
            }
            return .success(inputs)
        }

        private static func failure(_ r: inout JSONReader) -> Result<Inputs, RequestScanError> {
            _ = r.skipValue(depth: 1)
            return .failure(RequestScanError(message: shape, offset: nil))
        }

        mutating func add(tokens: Int) {
            count += 1
            largestTokens = max(largestTokens, tokens)
        }
    }
}
