/// An Anthropic request's `system` and `messages` as chat completions messages (each one JSON object's text).
///
/// - `system` (a string or text blocks) becomes a leading system message.
/// - A user turn's `tool_result` blocks become `tool` messages, in order, ahead of the rest of the turn (OpenAI
///   wants each tool answer right after the assistant's calls); its text and images become one user message.
///   Images inside a tool result go into that user message, before the turn's own content, since a `tool`
///   message carries text only.
/// - An assistant turn's text blocks become its content and its `tool_use` blocks its `tool_calls`;
///   `thinking` blocks (the model's own notes from an earlier answer) are left out.
enum AnthropicMessages {
    static func translate(system: RequestField?, messages: RequestField) throws(AnthropicError) -> [String] {
        var out: [String] = []
        if let system {
            let text = try systemText(system)
            if !text.isEmpty { out.append(#"{"role":"system","content":\#(JSONText.quoted(text))}"#) }
        }
        let items = try messages.array()
        if items.isEmpty { throw messages.refuse("at least one message is required") }
        for item in items {
            let message = try item.object()
            try message.refuseUnknown(["role", "content"])
            let roleField = try message.required("role")
            let role = try roleField.string()
            let content = try message.required("content")
            switch role {
            case "user": try user(content, into: &out)
            case "assistant": out.append(try assistant(content))
            case "system": throw roleField.refuse("'system' is not a message role; put the system prompt in the top-level 'system' field")
            default: throw roleField.refuse("'\(role)' is not one of user, assistant")
            }
        }
        return out
    }

    /// Text blocks are joined by a newline.
    static func systemText(_ field: RequestField) throws(AnthropicError) -> String {
        if case .string(let text) = field.value { return text }
        var texts: [String] = []
        for block in try field.array() {
            let object = try block.object()
            let typeField = try object.required("type")
            let type = try typeField.string()
            guard type == "text" else { throw typeField.refuse("'\(type)' is not allowed in 'system'; use text blocks") }
            texts.append(try object.required("text").string())
        }
        return texts.joined(separator: "\n")
    }

    /// A part of a user message's content.
    enum Part {
        case text(String)
        case image(url: String)

        var json: String {
            switch self {
            case .text(let text): #"{"type":"text","text":\#(JSONText.quoted(text))}"#
            case .image(let url): #"{"type":"image_url","image_url":{"url":\#(JSONText.quoted(url))}}"#
            }
        }
    }

    static func user(_ content: RequestField, into out: inout [String]) throws(AnthropicError) {
        if case .string(let text) = content.value {
            out.append(#"{"role":"user","content":\#(JSONText.quoted(text))}"#)
            return
        }
        var parts: [Part] = []
        var toolImages: [Part] = []
        var toolResults = 0
        for block in try blocks(content) {
            let (object, typeField, type) = try typed(block)
            switch type {
            case "text": parts.append(.text(try object.required("text").string()))
            case "image": parts.append(try image(object))
            case "tool_result":
                out.append(try toolResult(object, images: &toolImages))
                toolResults += 1
            case "tool_use", "thinking", "redacted_thinking":
                throw typeField.refuse("'\(type)' blocks belong in assistant messages")
            default:
                throw unsupported(typeField, type)
            }
        }
        let all = toolImages + parts
        if all.isEmpty, toolResults > 0 { return }
        let body: String
        if all.count == 1, case .text(let text) = all[0] {
            body = JSONText.quoted(text)
        } else if all.isEmpty {
            body = #""""#
        } else {
            body = "[" + all.map(\.json).joined(separator: ",") + "]"
        }
        out.append(#"{"role":"user","content":\#(body)}"#)
    }

    static func assistant(_ content: RequestField) throws(AnthropicError) -> String {
        if case .string(let text) = content.value {
            return #"{"role":"assistant","content":\#(JSONText.quoted(text))}"#
        }
        var text = ""
        var calls: [String] = []
        for block in try blocks(content) {
            let (object, typeField, type) = try typed(block)
            switch type {
            case "text": text += try object.required("text").string()
            case "tool_use":
                let id = try object.required("id").string()
                let name = try object.required("name").string()
                let input = try object.required("input")
                _ = try input.object()
                calls.append(
                    #"{"id":\#(JSONText.quoted(id)),"type":"function","function":{"name":\#(JSONText.quoted(name)),"arguments":\#(JSONText.quoted(input.value.json))}}"#
                )
            case "thinking", "redacted_thinking":
                continue
            case "image", "tool_result":
                throw typeField.refuse("'\(type)' blocks belong in user messages")
            default:
                throw unsupported(typeField, type)
            }
        }
        // OpenAI: content may be null only beside tool calls.
        let body = text.isEmpty && !calls.isEmpty ? "null" : JSONText.quoted(text)
        let toolCalls = calls.isEmpty ? "" : #","tool_calls":[\#(calls.joined(separator: ","))]"#
        return #"{"role":"assistant","content":\#(body)\#(toolCalls)}"#
    }

    /// A `tool_result` as a `tool` message; its text blocks are joined by a newline, its images handed back.
    /// `is_error` has no OpenAI counterpart, so the text says it: "Error: …".
    static func toolResult(_ block: RequestObject, images: inout [Part]) throws(AnthropicError) -> String {
        let id = try block.required("tool_use_id").string()
        var texts: [String] = []
        if let content = block.optional("content") {
            if case .string(let text) = content.value {
                texts.append(text)
            } else {
                for inner in try content.array() {
                    let (object, typeField, type) = try typed(inner)
                    switch type {
                    case "text": texts.append(try object.required("text").string())
                    case "image": images.append(try image(object))
                    default: throw typeField.refuse("'\(type)' is not supported in a tool_result; use text or image blocks")
                    }
                }
            }
        }
        var text = texts.joined(separator: "\n")
        if try block.optional("is_error")?.bool() == true { text = text.isEmpty ? "Error" : "Error: " + text }
        return #"{"role":"tool","tool_call_id":\#(JSONText.quoted(id)),"content":\#(JSONText.quoted(text))}"#
    }

    /// `source` `base64` → a `data:` URL; `url` → the URL.
    static func image(_ block: RequestObject) throws(AnthropicError) -> Part {
        let source = try block.required("source").object()
        let typeField = try source.required("type")
        switch try typeField.string() {
        case "base64":
            let media = try source.required("media_type").string()
            let data = try source.required("data").string()
            return .image(url: "data:\(media);base64,\(data)")
        case "url":
            return .image(url: try source.required("url").string())
        case let other:
            throw typeField.refuse("'\(other)' image sources are not supported; use base64 or url")
        }
    }

    /// A message's `content` that is not a string: its blocks.
    static func blocks(_ content: RequestField) throws(AnthropicError) -> [RequestField] {
        guard case .array = content.value else {
            throw content.refuse("expected a string or an array of content blocks, got \(content.value.kindName)")
        }
        return try content.array()
    }

    /// A content block's object, its `type` field and the type's name.
    static func typed(_ block: RequestField) throws(AnthropicError) -> (RequestObject, RequestField, String) {
        let object = try block.object()
        let typeField = try object.required("type")
        return (object, typeField, try typeField.string())
    }

    static func unsupported(_ typeField: RequestField, _ type: String) -> AnthropicError {
        typeField.refuse("'\(type)' is not a supported content block type (text, image, tool_use, tool_result)")
    }
}
