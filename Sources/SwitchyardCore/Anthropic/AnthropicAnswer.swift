/// A complete OpenAI `chat.completion` answer re-spoken as an Anthropic `message`.
///
/// The upstream's answer is read as a tree (it is small next to the work that made it) and the message is
/// written directly as JSON text: `content` blocks (`text`, then one `tool_use` per tool call), `stop_reason`
/// and `stop_sequence` (see `AnthropicStopReason`), `usage` in Anthropic's names.
public struct AnthropicAnswer: Sendable, Equatable {
    /// The `message` JSON to send to the client.
    public var body: [UInt8]
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use` or `refusal`.
    public var stopReason: String
    /// Tool calls whose arguments were not a JSON object, sent with `input: {}` (see `AnthropicToolCall.input`).
    public var brokenToolCalls: Int

    /// Translates `completion`; nil when it is not a usable answer (not JSON, no choice, an error object).
    ///
    /// - Parameters:
    ///   - model: what the client asked for (the route or model name), which Anthropic's `model` echoes.
    ///   - stopSequences: the request's `stop_sequences`, to report which one ended the answer when the
    ///     upstream says.
    ///   - estimatedInputTokens: `usage.input_tokens` when the upstream reported no usage.
    public static func translate(
        completion: [UInt8], model: String, stopSequences: [String] = [], estimatedInputTokens: Int = 0
    ) -> AnthropicAnswer? {
        guard let tree = JSONTree.read(completion), tree.isObject, tree["error"] == nil,
            let choice = tree["choices"]?.array?.first, choice["error"] == nil, let message = choice["message"], message.isObject
        else { return nil }
        let messageID = AnthropicID.message(upstream: tree["id"]?.string, fallback: completion)
        var output = TokenEstimate.TextCost()
        var blocks: [String] = []
        let refusal = message["refusal"]?.string ?? ""
        let text = Self.text(of: message["content"]) + refusal
        if !text.isEmpty {
            blocks.append(#"{"type":"text","text":\#(JSONText.quoted(text))}"#)
            output += TokenEstimate.TextCost(text)
        }
        var broken = 0
        let calls = message["tool_calls"]?.array ?? []
        for (index, call) in calls.enumerated() {
            var toolCall = AnthropicToolCall(index: index)
            toolCall.add(call)
            let input = toolCall.input
            if !input.valid { broken += 1 }
            output += TokenEstimate.TextCost(toolCall.name + toolCall.arguments)
            blocks.append(toolCall.block(messageID: messageID, input: input.json))
        }
        var stop = AnthropicStopReason(
            finishReason: choice["finish_reason"]?.string, hasToolCalls: !calls.isEmpty, choice: choice, requested: stopSequences)
        if !refusal.isEmpty, stop.reason == "end_turn" { stop = AnthropicStopReason(reason: "refusal") }
        let usage = tree["usage"]
        let inputTokens = usage?["prompt_tokens"]?.int ?? estimatedInputTokens
        let outputTokens = usage?["completion_tokens"]?.int ?? output.tokens
        let json =
            #"{"id":\#(JSONText.quoted(messageID)),"type":"message","role":"assistant","model":\#(JSONText.quoted(model)),"content":[\#(blocks.joined(separator: ","))],\#(stop.fields),"usage":{"input_tokens":\#(inputTokens),"output_tokens":\#(outputTokens)}}"#
        return AnthropicAnswer(body: Array(json.utf8), stopReason: stop.reason, brokenToolCalls: broken)
    }

    /// A message's `content`: a string, or (from some upstreams) an array of text parts; null is no text.
    static func text(of content: JSONTree?) -> String {
        if let s = content?.string { return s }
        return (content?.array ?? []).compactMap { $0["text"]?.string }.joined()
    }
}
