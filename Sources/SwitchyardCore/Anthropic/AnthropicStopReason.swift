/// Why an answer ended, in Anthropic's words (`stop_reason` and `stop_sequence`), from what an OpenAI-compatible
/// upstream says.
///
/// OpenAI's `finish_reason` is `stop` both for a natural end and for a stop sequence, and the sequence itself
/// is not part of the text, so the text cannot tell them apart. Two upstream extensions can:
/// - vLLM-based servers put the matched sequence in the choice's `stop_reason`;
/// - OpenRouter passes the provider's own reason in `native_finish_reason` (`stop_sequence` for some).
/// A `stop` with neither is reported as `end_turn`, with `stop_sequence` null.
struct AnthropicStopReason: Sendable, Equatable {
    var reason: String
    var sequence: String?

    /// - Parameters:
    ///   - finishReason: the choice's `finish_reason`.
    ///   - hasToolCalls: the answer holds tool calls (some upstreams end those with `stop`).
    ///   - choice: the choice object, for `stop_reason` and `native_finish_reason`.
    ///   - requested: the request's `stop_sequences`.
    init(finishReason: String?, hasToolCalls: Bool, choice: JSONTree?, requested: [String]) {
        switch finishReason {
        case "length":
            self.init(reason: "max_tokens")
        case "content_filter":
            self.init(reason: "refusal")
        case "tool_calls", "function_call":
            self.init(reason: "tool_use")
        case _ where hasToolCalls:
            self.init(reason: "tool_use")
        default:
            if let matched = choice?["stop_reason"]?.string, requested.contains(matched) {
                self.init(reason: "stop_sequence", sequence: matched)
            } else if choice?["native_finish_reason"]?.string == "stop_sequence" {
                self.init(reason: "stop_sequence", sequence: requested.count == 1 ? requested[0] : nil)
            } else {
                self.init(reason: "end_turn")
            }
        }
    }

    init(reason: String, sequence: String? = nil) {
        self.reason = reason
        self.sequence = sequence
    }

    /// `"stop_reason":…,"stop_sequence":…` for a message or a `message_delta`.
    var fields: String {
        #""stop_reason":\#(JSONText.quoted(reason)),"stop_sequence":\#(sequence.map { JSONText.quoted($0) } ?? "null")"#
    }
}
