import Foundation

/// Strict decoders of Anthropic's Messages API answers and stream events, after its published schema (the
/// Python SDK's `Message`, `Usage`, `RawMessageStreamEvent` types): every required field must be present with
/// its type, required-but-nullable fields (`stop_reason`, `stop_sequence`) must be present as keys, and an
/// unknown block, delta or event type fails. What decodes here is what Anthropic's SDKs accept.
enum AnthropicSchema {
    static let stopReasons: Set<String> = [
        "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded",
    ]

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Message: Decodable {
        let id: String
        let type: String
        let role: String
        let model: String
        let content: [ContentBlock]
        let stop_reason: String?
        let stop_sequence: String?
        let usage: Usage

        enum CodingKeys: String, CodingKey { case id, type, role, model, content, stop_reason, stop_sequence, usage }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            type = try c.decode(String.self, forKey: .type)
            role = try c.decode(String.self, forKey: .role)
            model = try c.decode(String.self, forKey: .model)
            content = try c.decode([ContentBlock].self, forKey: .content)
            stop_reason = try c.decodeRequiredNullable(String.self, forKey: .stop_reason)
            stop_sequence = try c.decodeRequiredNullable(String.self, forKey: .stop_sequence)
            usage = try c.decode(Usage.self, forKey: .usage)
            guard type == "message", role == "assistant" else { throw Failure(description: "type \(type), role \(role)") }
            if let stop_reason, !AnthropicSchema.stopReasons.contains(stop_reason) { throw Failure(description: "stop_reason \(stop_reason)") }
        }

        static func decode(_ bytes: [UInt8]) throws -> Message {
            try JSONDecoder().decode(Message.self, from: Data(bytes))
        }
    }

    struct Usage: Decodable {
        let input_tokens: Int
        let output_tokens: Int
    }

    enum ContentBlock: Decodable, Equatable {
        case text(String)
        case toolUse(id: String, name: String, input: JSONValue)

        enum CodingKeys: String, CodingKey { case type, text, id, name, input }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .type) {
            case "text":
                self = .text(try c.decode(String.self, forKey: .text))
            case "tool_use":
                let input = try c.decode(JSONValue.self, forKey: .input)
                guard case .object = input else { throw Failure(description: "tool_use input is not an object") }
                self = .toolUse(id: try c.decode(String.self, forKey: .id), name: try c.decode(String.self, forKey: .name), input: input)
            case let other:
                throw Failure(description: "unknown content block type \(other)")
            }
        }
    }

    /// One `event: NAME` / `data: JSON` pair of a stream.
    enum Event: Decodable {
        case messageStart(Message)
        case contentBlockStart(index: Int, block: ContentBlock)
        case textDelta(index: Int, text: String)
        case inputJSONDelta(index: Int, partialJSON: String)
        case contentBlockStop(index: Int)
        case messageDelta(stopReason: String?, stopSequence: String?, outputTokens: Int)
        case messageStop
        case ping
        case error(type: String, message: String)

        enum CodingKeys: String, CodingKey { case type, message, index, content_block, delta, usage, error }
        enum DeltaKeys: String, CodingKey { case type, text, partial_json, stop_reason, stop_sequence }
        enum UsageKeys: String, CodingKey { case output_tokens }
        enum ErrorKeys: String, CodingKey { case type, message }

        var name: String {
            switch self {
            case .messageStart: "message_start"
            case .contentBlockStart: "content_block_start"
            case .textDelta, .inputJSONDelta: "content_block_delta"
            case .contentBlockStop: "content_block_stop"
            case .messageDelta: "message_delta"
            case .messageStop: "message_stop"
            case .ping: "ping"
            case .error: "error"
            }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .type) {
            case "message_start":
                self = .messageStart(try c.decode(Message.self, forKey: .message))
            case "content_block_start":
                self = .contentBlockStart(index: try c.decode(Int.self, forKey: .index), block: try c.decode(ContentBlock.self, forKey: .content_block))
            case "content_block_delta":
                let index = try c.decode(Int.self, forKey: .index)
                let d = try c.nestedContainer(keyedBy: DeltaKeys.self, forKey: .delta)
                switch try d.decode(String.self, forKey: .type) {
                case "text_delta": self = .textDelta(index: index, text: try d.decode(String.self, forKey: .text))
                case "input_json_delta": self = .inputJSONDelta(index: index, partialJSON: try d.decode(String.self, forKey: .partial_json))
                case let other: throw Failure(description: "unknown delta type \(other)")
                }
            case "content_block_stop":
                self = .contentBlockStop(index: try c.decode(Int.self, forKey: .index))
            case "message_delta":
                let d = try c.nestedContainer(keyedBy: DeltaKeys.self, forKey: .delta)
                let u = try c.nestedContainer(keyedBy: UsageKeys.self, forKey: .usage)
                let reason = try d.decodeIfPresent(String.self, forKey: .stop_reason)
                if let reason, !AnthropicSchema.stopReasons.contains(reason) { throw Failure(description: "stop_reason \(reason)") }
                self = .messageDelta(
                    stopReason: reason, stopSequence: try d.decodeIfPresent(String.self, forKey: .stop_sequence),
                    outputTokens: try u.decode(Int.self, forKey: .output_tokens))
            case "message_stop":
                self = .messageStop
            case "ping":
                self = .ping
            case "error":
                let e = try c.nestedContainer(keyedBy: ErrorKeys.self, forKey: .error)
                self = .error(type: try e.decode(String.self, forKey: .type), message: try e.decode(String.self, forKey: .message))
            case let other:
                throw Failure(description: "unknown event type \(other)")
            }
        }
    }

    /// Splits Anthropic SSE bytes into events and decodes each; the `event:` name must match the data's `type`.
    static func events(_ bytes: [UInt8]) throws -> [Event] {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.isEmpty || text.hasSuffix("\n\n") else { throw Failure(description: "the stream does not end with a blank line") }
        return try text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
            let lines = block.components(separatedBy: "\n")
            guard lines.count == 2, lines[0].hasPrefix("event: "), lines[1].hasPrefix("data: ") else {
                throw Failure(description: "not an event: \(block)")
            }
            let event = try JSONDecoder().decode(Event.self, from: Data(lines[1].dropFirst(6).utf8))
            guard event.name == String(lines[0].dropFirst(7)) else { throw Failure(description: "event name \(lines[0]) for \(event.name)") }
            return event
        }
    }

    /// A stream folded into the message it describes, as the SDKs' stream helpers do; fails on events out of
    /// order (a delta for a block not started, anything after `message_stop`, tool input that is not JSON).
    struct Folded {
        var message: Message?
        var texts: [Int: String] = [:]
        var toolJSON: [Int: String] = [:]
        var blocks: [Int: ContentBlock] = [:]
        var stopped: Set<Int> = []
        var stopReason: String?
        var stopSequence: String?
        var outputTokens: Int?
        var complete = false
        var error: (type: String, message: String)?

        init(_ events: [Event]) throws {
            for (n, event) in events.enumerated() {
                guard !complete, error == nil else { throw Failure(description: "an event after the end: \(event.name)") }
                switch event {
                case .messageStart(let m):
                    guard n == 0, m.content.isEmpty, m.stop_reason == nil else { throw Failure(description: "message_start out of place") }
                    message = m
                case .contentBlockStart(let index, let block):
                    guard message != nil, blocks[index] == nil, index == blocks.count else { throw Failure(description: "block \(index) out of order") }
                    blocks[index] = block
                case .textDelta(let index, let text):
                    guard case .text = blocks[index], !stopped.contains(index) else { throw Failure(description: "text delta for block \(index)") }
                    texts[index, default: ""] += text
                case .inputJSONDelta(let index, let partial):
                    guard case .toolUse = blocks[index], !stopped.contains(index) else { throw Failure(description: "json delta for block \(index)") }
                    toolJSON[index, default: ""] += partial
                case .contentBlockStop(let index):
                    guard blocks[index] != nil, stopped.insert(index).inserted else { throw Failure(description: "stop for block \(index)") }
                case .messageDelta(let reason, let sequence, let tokens):
                    guard blocks.count == stopped.count else { throw Failure(description: "message_delta with a block open") }
                    (stopReason, stopSequence, outputTokens) = (reason, sequence, tokens)
                case .messageStop:
                    guard stopReason != nil else { throw Failure(description: "message_stop without a stop reason") }
                    complete = true
                case .ping:
                    continue
                case .error(let type, let message):
                    error = (type, message)
                }
            }
            for (index, json) in toolJSON {
                guard (try? JSONSerialization.jsonObject(with: Data(json.utf8))) is [String: Any] else {
                    throw Failure(description: "tool input of block \(index) is not a JSON object: \(json)")
                }
            }
        }

        var text: String { texts.keys.sorted().map { texts[$0] ?? "" }.joined() }

        /// The tool calls: (id, name, input JSON).
        var toolUses: [(id: String, name: String, input: String)] {
            blocks.keys.sorted().compactMap { index in
                guard case .toolUse(let id, let name, _) = blocks[index] else { return nil }
                return (id, name, toolJSON[index] ?? "")
            }
        }
    }
}

/// Any JSON value, for `tool_use.input`.
enum JSONValue: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}

extension KeyedDecodingContainer {
    /// A field that must be present, though it may be null.
    func decodeRequiredNullable<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { throw AnthropicSchema.Failure(description: "missing required field \(key.stringValue)") }
        return try decodeNil(forKey: key) ? nil : decode(type, forKey: key)
    }
}
