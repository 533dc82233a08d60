/// Turns an OpenAI chat completion stream into Anthropic's event stream, one upstream event at a time.
///
/// A pure state machine: the caller feeds each event's data (the JSON after `data: `, or `[DONE]`) and sends
/// the bytes it gets back. Anthropic's sequence is `message_start`, `ping`, then per content block
/// `content_block_start` / `content_block_delta`… / `content_block_stop`, then `message_delta` (stop reason,
/// usage) and `message_stop`.
///
/// - Text streams as it comes, as `text_delta`s of one text block.
/// - A tool call becomes one `tool_use` block, sent whole (start, one `input_json_delta`, stop) once the call
///   is complete: when the answer finishes, or text follows it. Its arguments are checked first, because
///   Anthropic's SDKs parse `partial_json` as it accumulates and would fail on a model's broken JSON; a
///   broken one is sent as `{}` (see `AnthropicToolCall.input`).
/// - `message_delta` waits for the end of the upstream stream (`[DONE]` or `finish()`), since usage comes in a
///   last chunk with `choices: []` after the finish reason (OpenRouter always, others when asked).
/// - Only an answer with a finish reason ends with `message_stop`. A stream that stops short is the caller's
///   to settle (`isComplete` says which): `fail` sends an `error` event and never a `message_stop`, so a cut
///   answer cannot look complete.
public struct AnthropicStream: Sendable {
    public let model: String
    public let inputTokens: Int
    public let stopSequences: [String]

    private var messageID: String?
    private var closed = false
    private var nextBlock = 0
    /// Index of the text block being written, if one is open.
    private var openText: Int?
    /// Tool calls being gathered, in the order they appeared.
    private var toolCalls: [AnthropicToolCall] = []
    private var sawToolCalls = false
    private var stop: AnthropicStopReason?
    private var reportedInput: Int?
    private var reportedOutput: Int?
    /// Output seen, for `output_tokens` when the upstream reports no usage.
    private var output = TokenEstimate.TextCost()
    /// Tool calls whose arguments were not a JSON object, sent as `{}`.
    public private(set) var brokenToolCalls = 0

    /// - Parameters:
    ///   - model: what the client asked for (route or model name), echoed in `message_start`.
    ///   - inputTokens: the gateway's estimate of the prompt, for `message_start` (the upstream's count, when
    ///     it sends one, comes in `message_delta`).
    ///   - stopSequences: the request's `stop_sequences`, to report the one that ended the answer.
    public init(model: String, inputTokens: Int, stopSequences: [String] = []) {
        self.model = model
        self.inputTokens = inputTokens
        self.stopSequences = stopSequences
    }

    /// `message_start` has been sent: from here on a failure must end with `fail`.
    public var hasStarted: Bool { messageID != nil }

    /// The upstream gave a finish reason: the answer is whole and `finish()` (or `[DONE]`) ends it properly.
    public var isComplete: Bool { stop != nil }

    /// `message_stop` or an `error` event has been sent; nothing more will be.
    public var isClosed: Bool { closed }

    /// The Anthropic events for one upstream event. Malformed events and the upstream's own error events
    /// give nothing: what to do about a failure is the caller's decision.
    public mutating func feed(_ event: [UInt8]) -> [UInt8] {
        guard !closed else { return [] }
        if StreamChunkScan.isDone(event) { return finish() }
        guard let chunk = JSONTree.read(event), chunk.isObject, chunk["error"] == nil else { return [] }
        let choice = chunk["choices"]?.array?.first
        if choice?["error"] != nil || choice?["finish_reason"]?.string == "error" { return [] }
        var out = ""
        if messageID == nil { start(chunk, event, &out) }
        if let usage = chunk["usage"], usage.isObject {
            reportedInput = usage["prompt_tokens"]?.int ?? reportedInput
            reportedOutput = usage["completion_tokens"]?.int ?? reportedOutput
        }
        if stop == nil, let choice {
            let delta = choice["delta"]
            let text = (delta?["content"]?.string ?? "") + (delta?["refusal"]?.string ?? "")
            if !text.isEmpty { addText(text, &out) }
            for piece in delta?["tool_calls"]?.array ?? [] { addToolPiece(piece, &out) }
            if let reason = choice["finish_reason"]?.string {
                endBlocks(&out)
                stop = AnthropicStopReason(finishReason: reason, hasToolCalls: sawToolCalls, choice: choice, requested: stopSequences)
            }
        }
        return Array(out.utf8)
    }

    /// Ends a complete answer: `message_delta` and `message_stop`. Gives nothing for an incomplete one
    /// (see `isComplete`), which the caller ends with `fail`.
    public mutating func finish() -> [UInt8] {
        guard !closed, let stop else { return [] }
        closed = true
        let outputTokens = reportedOutput ?? output.tokens
        let input = reportedInput.map { #","input_tokens":\#($0)"# } ?? ""
        var out = ""
        Self.event("message_delta", #"{"type":"message_delta","delta":{\#(stop.fields)},"usage":{"output_tokens":\#(outputTokens)\#(input)}}"#, &out)
        Self.event("message_stop", #"{"type":"message_stop"}"#, &out)
        return Array(out.utf8)
    }

    /// Ends the stream with an `error` event (`overloaded_error` for "busy, try again", else `api_error`),
    /// never with `message_stop`.
    public mutating func fail(message: String, type: String = "api_error") -> [UInt8] {
        fail(AnthropicError(status: type == "overloaded_error" ? 529 : 500, type: type, message: message))
    }

    public mutating func fail(_ error: AnthropicError) -> [UInt8] {
        guard !closed else { return [] }
        closed = true
        return error.sseEvent
    }

    /// A whole OpenAI event stream (a cached answer's replay) as Anthropic's; an incomplete one ends with an
    /// `error` event.
    public static func translate(sse: [UInt8], model: String, inputTokens: Int, stopSequences: [String] = []) -> [UInt8] {
        var stream = AnthropicStream(model: model, inputTokens: inputTokens, stopSequences: stopSequences)
        var decoder = SSEDecoder()
        var out: [UInt8] = []
        decoder.feed(sse) { out += stream.feed($0) }
        out += stream.isComplete ? stream.finish() : stream.fail(message: "the answer ended before it was complete")
        return out
    }

    // MARK: blocks

    private mutating func start(_ chunk: JSONTree, _ event: [UInt8], _ out: inout String) {
        let id = AnthropicID.message(upstream: chunk["id"]?.string, fallback: event)
        messageID = id
        Self.event(
            "message_start",
            #"{"type":"message_start","message":{"id":\#(JSONText.quoted(id)),"type":"message","role":"assistant","model":\#(JSONText.quoted(model)),"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":\#(inputTokens),"output_tokens":0}}}"#,
            &out)
        Self.event("ping", #"{"type":"ping"}"#, &out)
    }

    private mutating func addText(_ text: String, _ out: inout String) {
        if !toolCalls.isEmpty { flushToolCalls(&out) }
        let index: Int
        if let openText {
            index = openText
        } else {
            index = nextBlock
            nextBlock += 1
            openText = index
            Self.event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"text","text":""}}"#, &out)
        }
        output += TokenEstimate.TextCost(text)
        Self.event(
            "content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"text_delta","text":\#(JSONText.quoted(text))}}"#, &out)
    }

    /// Adds a piece of a tool call to the call with its `index` (pieces without one: a piece with a new id
    /// starts a call, others continue the last).
    private mutating func addToolPiece(_ piece: JSONTree, _ out: inout String) {
        closeText(&out)
        sawToolCalls = true
        let index = piece["index"]?.int
        let position: Int
        if let index, let found = toolCalls.firstIndex(where: { $0.index == index }) {
            position = found
        } else if index == nil, let last = toolCalls.last, piece["id"]?.string.map({ $0 == last.id }) ?? true {
            position = toolCalls.count - 1
        } else {
            toolCalls.append(AnthropicToolCall(index: index ?? (toolCalls.map(\.index).max() ?? -1) + 1))
            position = toolCalls.count - 1
        }
        toolCalls[position].add(piece)
    }

    private mutating func closeText(_ out: inout String) {
        guard let index = openText else { return }
        openText = nil
        Self.event("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#, &out)
    }

    private mutating func flushToolCalls(_ out: inout String) {
        let messageID = self.messageID ?? ""
        for call in toolCalls {
            let index = nextBlock
            nextBlock += 1
            let input = call.input
            if !input.valid { brokenToolCalls += 1 }
            output += TokenEstimate.TextCost(call.name + call.arguments)
            Self.event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":\#(call.block(messageID: messageID, input: "{}"))}"#, &out)
            Self.event(
                "content_block_delta",
                #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"input_json_delta","partial_json":\#(JSONText.quoted(input.json))}}"#, &out)
            Self.event("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#, &out)
        }
        toolCalls.removeAll()
    }

    private mutating func endBlocks(_ out: inout String) {
        closeText(&out)
        flushToolCalls(&out)
    }

    private static func event(_ name: String, _ json: String, _ out: inout String) {
        out += "event: "
        out += name
        out += "\ndata: "
        out += json
        out += "\n\n"
    }
}
