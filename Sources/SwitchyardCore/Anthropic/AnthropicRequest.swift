/// An Anthropic Messages API request (`POST /v1/messages`), translated to the OpenAI chat completions request
/// the rest of the gateway routes, caches and fails over like any other.
///
/// The request is read whole into a tree (it is not the hot path: a Messages request is translated once and
/// the result then takes the chat completions path) and every field is checked the way Anthropic checks it,
/// so a malformed request is refused with the field's path (`messages[2].content[0].type`) instead of
/// spending an upstream request. The chat completions body is written directly as JSON text.
public struct AnthropicRequest: Sendable, Equatable {
    /// What the request is for: `count_tokens` takes the same fields but no `max_tokens`.
    public enum Purpose: Sendable {
        case messages
        case countTokens
    }

    /// The route or model the client asked for.
    public var model: String
    public var stream: Bool
    /// Required for `.messages` (as Anthropic requires it); nil only when counting tokens.
    public var maxTokens: Int?
    /// `stop_sequences`, for the answer's `stop_sequence`.
    public var stopSequences: [String]
    /// The OpenAI chat completions request body.
    public var body: [UInt8]

    /// Fields Anthropic accepts that have no chat completions counterpart here: accepted and left out.
    /// (`top_k` has none in OpenAI's API; `thinking`, `cache_control` and the server-side features
    /// are Anthropic's own.)
    public static let ignoredFields: Set<String> = [
        "top_k", "thinking", "service_tier", "cache_control", "container", "context_management", "mcp_servers", "output_config",
        "inference_geo",
    ]

    static let translatedFields: Set<String> = [
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "metadata", "stream", "tools", "tool_choice",
    ]

    public static func translate(_ bytes: [UInt8], for purpose: Purpose = .messages) throws(AnthropicError) -> AnthropicRequest {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(AnthropicError) in try translate(raw, for: purpose) } }
        return try result.get()
    }

    public static func translate(_ bytes: UnsafeRawBufferPointer, for purpose: Purpose = .messages) throws(AnthropicError) -> AnthropicRequest {
        let tree: JSONTree
        do {
            tree = try JSONTree.parse(bytes)
        } catch {
            throw AnthropicError.invalidRequest("the body is not valid JSON: \(error.description)")
        }
        guard tree.isObject else { throw AnthropicError.invalidRequest("the body must be a JSON object") }
        let root = try RequestField(value: tree, path: "").object()
        try root.refuseUnknown(translatedFields.union(ignoredFields))

        let model = try root.required("model").string()
        if model.isEmpty { throw AnthropicError.invalidRequest("model: must not be empty") }
        var maxTokens: Int?
        if let field = root.optional("max_tokens") {
            let value = try field.integer()
            guard value >= 1 else { throw field.refuse("must be at least 1") }
            maxTokens = value
        } else if purpose == .messages {
            throw AnthropicError.invalidRequest("max_tokens: Field required")
        }
        let messages = try AnthropicMessages.translate(system: root.optional("system"), messages: root.required("messages"))
        let stopSequences = try root.optional("stop_sequences")?.array().map { field throws(AnthropicError) in try field.string() } ?? []
        let stream = try root.optional("stream")?.bool() ?? false

        var out = #"{"model":\#(JSONText.quoted(model)),"messages":[\#(messages.joined(separator: ","))]"#
        if let maxTokens { out += #","max_tokens":\#(maxTokens)"# }
        if !stopSequences.isEmpty { out += #","stop":[\#(stopSequences.map { JSONText.quoted($0) }.joined(separator: ","))]"# }
        for name in ["temperature", "top_p"] {
            if let number = try root.optional(name)?.number() { out += ",\(JSONText.quoted(name)):\(number)" }
        }
        if let metadata = root.optional("metadata") {
            let fields = try metadata.object()
            try fields.refuseUnknown(["user_id"])
            if let user = try fields.optional("user_id")?.string() { out += #","user":\#(JSONText.quoted(user))"# }
        }
        if stream, purpose == .messages {
            // Usage comes in a last chunk only when asked for (OpenRouter sends it anyway): Anthropic's
            // `message_delta` reports the real counts with it.
            out += #","stream":true,"stream_options":{"include_usage":true}"#
        }
        out += try AnthropicTools.fields(tools: root.optional("tools"), choice: root.optional("tool_choice"))
        out += "}"
        return AnthropicRequest(model: model, stream: stream, maxTokens: maxTokens, stopSequences: stopSequences, body: Array(out.utf8))
    }

    /// `POST /v1/messages/count_tokens`: the gateway's own estimate of the translated request's prompt (the
    /// same one routing uses to pick a model that fits), as `{"input_tokens":N}`.
    public static func countTokens(_ bytes: [UInt8]) throws(AnthropicError) -> (inputTokens: Int, json: [UInt8]) {
        let request = try translate(bytes, for: .countTokens)
        let tokens = try request.estimatedInputTokens()
        return (tokens, Array(#"{"input_tokens":\#(tokens)}"#.utf8))
    }

    /// The routing scan's prompt estimate of the translated body.
    public func estimatedInputTokens() throws(AnthropicError) -> Int {
        do {
            return try ChatRequestScan.scan(body).estimatedPromptTokens
        } catch {
            throw AnthropicError.invalidRequest(error.message)
        }
    }
}
