/// One OpenAI tool call on its way to becoming a `tool_use` block: gathered whole from an answer, or piece by
/// piece from a stream's `delta.tool_calls`.
struct AnthropicToolCall: Sendable, Equatable {
    /// The call's `index` in a stream (its position in an answer).
    var index: Int
    var id: String?
    var name = ""
    /// `function.arguments`: JSON text, as the model wrote it.
    var arguments = ""

    /// The block's `input`: the arguments when they are a JSON object; `{}` when they are empty (a tool without
    /// parameters) or when the model wrote something else (broken or cut JSON, an array, a bare string).
    ///
    /// A `tool_use.input` must be an object: Anthropic's SDKs parse it, and a client given broken JSON would
    /// fail on the whole answer. `{}` lets the client run its own input check, which reports the missing
    /// arguments back to the model in a `tool_result`, the usual way an agent recovers. `valid` says which
    /// case it was, so the caller can count the broken ones.
    var input: (json: String, valid: Bool) {
        let trimmed = arguments.utf8.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        if trimmed.isEmpty { return ("{}", true) }
        guard trimmed.first == UInt8(ascii: "{") else { return ("{}", false) }
        let valid = Array(arguments.utf8).withUnsafeBytes { raw in
            (try? ChatRequestScan.validateJSON(raw)) != nil
        }
        return valid ? (arguments, true) : ("{}", false)
    }

    /// Adds one piece of a streamed call (`{"index":0,"id":…,"function":{"name":…,"arguments":…}}`).
    mutating func add(_ piece: JSONTree) {
        if let id = piece["id"]?.string, !id.isEmpty { self.id = id }
        // OpenAI sends the name whole in the call's first piece; some upstreams repeat it in every piece.
        if name.isEmpty, let name = piece["function"]?["name"]?.string { self.name = name }
        if let arguments = piece["function"]?["arguments"]?.string { self.arguments += arguments }
    }

    /// The `tool_use` block, with `input` set to `input`.
    func block(messageID: String, input: String) -> String {
        let id = AnthropicID.toolUse(upstream: id, messageID: messageID, index: index)
        return #"{"type":"tool_use","id":\#(JSONText.quoted(id)),"name":\#(JSONText.quoted(name)),"input":\#(input)}"#
    }
}
