import Foundation

/// The parts of a chat request the fake reads.
public struct FakeChatRequest: Sendable {
    public var model: String
    public var stream: Bool
    public var includeUsage: Bool
    public var maxTokens: Int?
    /// The conversation without a trailing assistant message, flattened: what the answer is derived from.
    public var promptText: String
    /// A trailing assistant message: a prefill the answer must continue.
    public var prefill: String?
    /// The fake's own token count of the prompt (about 4 bytes a token, as real tokenizers average).
    public var promptTokens: Int
    public var bodyBytes: Int
    /// The tool the answer calls: the first of `tools`, when the client offers tools (and `tool_choice` is not
    /// `none`) and the conversation does not end with a tool's result.
    public var toolName: String?

    /// Parses a request body; nil with a reason when it is not a chat request.
    public static func parse(_ body: Data) -> (FakeChatRequest?, String?) {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return (nil, "We could not parse the JSON body of your request.")
        }
        guard let model = object["model"] as? String else { return (nil, "you must provide a model parameter") }
        guard let messages = object["messages"] as? [[String: Any]], !messages.isEmpty else {
            return (nil, "'messages' must be a non-empty array")
        }
        var texts: [String] = []
        var tokens = 3
        var prefill: String?
        for (index, message) in messages.enumerated() {
            let role = message["role"] as? String ?? ""
            let content = Self.text(message["content"])
            if index == messages.count - 1, role == "assistant" {
                prefill = content
            } else {
                texts.append(role + ":" + content)
            }
            tokens += 3 + (content.utf8.count + 3) / 4
        }
        let streamOptions = object["stream_options"] as? [String: Any]
        let maxTokens = (object["max_tokens"] as? Int) ?? (object["max_completion_tokens"] as? Int)
        var request = FakeChatRequest(
            model: model, stream: object["stream"] as? Bool ?? false,
            includeUsage: streamOptions?["include_usage"] as? Bool ?? false, maxTokens: maxTokens,
            promptText: texts.joined(separator: "\n"), prefill: prefill, promptTokens: tokens, bodyBytes: body.count)
        request.toolName = toolToCall(object, lastRole: messages.last?["role"] as? String)
        return (request, nil)
    }

    /// The first offered tool's name, unless tools are switched off or a tool's result is being answered.
    static func toolToCall(_ object: [String: Any], lastRole: String?) -> String? {
        guard lastRole != "tool", (object["tool_choice"] as? String) != "none",
            let tools = object["tools"] as? [[String: Any]], let function = tools.first?["function"] as? [String: Any]
        else { return nil }
        return function["name"] as? String
    }

    /// The arguments the fake passes to a tool: the prompt's first words, as JSON text.
    public static func toolArguments(for prompt: String) -> String {
        let words = prompt.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == ":" }).prefix(4).joined(separator: " ")
        return #"{"query":"\#(FakeRender.escape(words))"}"#
    }

    static func text(_ content: Any?) -> String {
        if let s = content as? String { return s }
        if let parts = content as? [[String: Any]] {
            return parts.compactMap { $0["text"] as? String }.joined(separator: " ")
        }
        return ""
    }
}

/// The deterministic answer to a prompt: the same prompt gets the same text from every model,
/// so a stream started on one model and continued on another is still checkable byte for byte.
public enum FakeAnswer {
    static let vocabulary = [
        "switch", "yard", "freight", "signal", "track", "engine", "coupler", "ballast", "siding", "caboose", "junction",
        "gauge", "tender", "boxcar", "hopper", "tanker", "flatcar", "semaphore", "turntable", "roundhouse", "dispatch",
        "manifest", "consist", "hump", "lead", "ladder", "crossover", "frog", "points", "rail",
    ]

    /// The answer's tokens: each a word with its leading space, the first capitalised, the last with a full stop.
    public static func tokens(for prompt: String, count: Int) -> [String] {
        var state = fnv1a(prompt) | 1
        var out: [String] = []
        out.reserveCapacity(count)
        for i in 0..<max(count, 1) {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            var word = vocabulary[Int(state % UInt64(vocabulary.count))]
            if i == 0 { word = word.prefix(1).uppercased() + word.dropFirst() }
            if i == count - 1 { word += "." }
            out.append(i == 0 ? word : " " + word)
        }
        return out
    }

    /// The whole answer text for a prompt.
    public static func text(for prompt: String, count: Int) -> String {
        tokens(for: prompt, count: count).joined()
    }

    /// The tokens still to say after `prefill`, when it is a prefix of the answer; nil otherwise.
    static func continuation(of prefill: String, tokens: [String]) -> [String]? {
        var consumed = 0
        let target = Array(prefill.utf8)
        for (index, token) in tokens.enumerated() {
            let bytes = Array(token.utf8)
            let end = consumed + bytes.count
            if end <= target.count {
                guard Array(target[consumed..<end]) == bytes else { return nil }
                consumed = end
                if consumed == target.count { return Array(tokens[(index + 1)...]) }
            } else {
                // The prefill ends inside this token: say the rest of it, then the others.
                guard Array(target[consumed...]) == Array(bytes[..<(target.count - consumed)]) else { return nil }
                let rest = String(decoding: bytes[(target.count - consumed)...], as: UTF8.self)
                return [rest] + tokens[(index + 1)...]
            }
        }
        return target.isEmpty ? tokens : nil
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }
}

/// JSON bodies and SSE events in the providers' shapes, built as text (no encoder on the fake's hot path).
enum FakeRender {
    static func escape(_ s: String) -> String {
        // Most text needs no escaping: return it as is rather than rebuilding it scalar by scalar.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func usage(prompt: Int, completion: Int) -> String {
        #"{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion)}"#
    }

    static func completion(id: String, created: Int, model: String, content: String, finish: String, prompt: Int, completion: Int) -> String {
        #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":"\#(escape(model))","choices":[{"index":0,"message":{"role":"assistant","content":"\#(escape(content))"},"logprobs":null,"finish_reason":"\#(finish)"}],"usage":\#(usage(prompt: prompt, completion: completion))}"#
    }

    static func chunk(id: String, created: Int, model: String, delta: String, finish: String?) -> String {
        let f = finish.map { "\"\($0)\"" } ?? "null"
        return "data: " + #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":"\#(escape(model))","choices":[{"index":0,"delta":\#(delta),"logprobs":null,"finish_reason":\#(f)}]}"#
            + "\n\n"
    }

    static func contentDelta(_ text: String) -> String { #"{"content":"\#(escape(text))"}"# }

    /// A non-streaming answer that calls `tool` with `arguments` (JSON text).
    static func toolCallCompletion(id: String, created: Int, model: String, tool: String, arguments: String, prompt: Int) -> String {
        let call = #"{"id":"call_\#(id)","type":"function","function":{"name":"\#(escape(tool))","arguments":"\#(escape(arguments))"}}"#
        return #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":"\#(escape(model))","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[\#(call)]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":\#(usage(prompt: prompt, completion: 8))}"#
    }

    /// The tool call's first streamed delta (id, name, no arguments yet), then its arguments in pieces.
    static func toolCallDeltas(id: String, tool: String, arguments: String) -> [String] {
        let head = #"{"tool_calls":[{"index":0,"id":"call_\#(id)","type":"function","function":{"name":"\#(escape(tool))","arguments":""}}]}"#
        let bytes = Array(arguments.utf8)
        let half = bytes.count / 2
        let pieces = [String(decoding: bytes[..<half], as: UTF8.self), String(decoding: bytes[half...], as: UTF8.self)]
        return [head] + pieces.map { #"{"tool_calls":[{"index":0,"function":{"arguments":"\#(escape($0))"}}]}"# }
    }
    static let roleDelta = #"{"role":"assistant","content":""}"#

    static func usageChunk(id: String, created: Int, model: String, prompt: Int, completion: Int) -> String {
        "data: " + #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":"\#(escape(model))","choices":[],"usage":\#(usage(prompt: prompt, completion: completion))}"#
            + "\n\n"
    }

    static func streamError(id: String, created: Int, model: String) -> String {
        "data: " + #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":"\#(escape(model))","error":{"code":502,"message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#
            + "\n\n"
    }

    static func error(message: String, type: String?, code: String?, extra: String = "") -> String {
        var fields = [#""message":"\#(escape(message))""#]
        if let type { fields.append(#""type":"\#(type)""#) }
        fields.append(#""param":null"#)
        if let code { fields.append(#""code":"\#(code)""#) }
        if !extra.isEmpty { fields.append(extra) }
        return #"{"error":{"# + fields.joined(separator: ",") + "}}"
    }

    /// OpenRouter puts an integer code and `metadata` in its errors.
    static func openRouterError(code: Int, message: String, metadata: String? = nil) -> String {
        let meta = metadata.map { #","metadata":\#($0)"# } ?? ""
        return #"{"error":{"code":\#(code),"message":"\#(escape(message))"\#(meta)}}"#
    }
}
