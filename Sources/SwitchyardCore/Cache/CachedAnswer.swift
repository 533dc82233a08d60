/// A complete answer kept for replay, in the parts needed to answer either way: as the JSON of a
/// `chat.completion` or as a stream of `chat.completion.chunk` events.
public struct CachedAnswer: Sendable, Equatable {
    public var id: String
    public var created: Int
    /// The upstream model id that answered (as in the original `model` field).
    public var upstreamModel: String
    /// Our model name and key label, for the headers of a hit.
    public var modelName: String
    public var keyLabel: String
    public var content: String
    public var finishReason: String
    /// The usage object's JSON, if the answer carried one.
    public var usageJSON: String?
    /// The original JSON body when the answer came non-streaming: served byte for byte.
    public var body: [UInt8]?
    /// False for tool-call answers: their JSON is served as is, but they are not replayed as a stream.
    public var replayable = true

    public init(
        id: String, created: Int, upstreamModel: String, modelName: String, keyLabel: String, content: String, finishReason: String,
        usageJSON: String?, body: [UInt8]?
    ) {
        self.id = id
        self.created = created
        self.upstreamModel = upstreamModel
        self.modelName = modelName
        self.keyLabel = keyLabel
        self.content = content
        self.finishReason = finishReason
        self.usageJSON = usageJSON
        self.body = body
    }

    /// Only complete answers are stored: a `length` cut, an error or an unfinished answer never is.
    public static func isComplete(finishReason: String?) -> Bool {
        finishReason == "stop" || finishReason == "tool_calls"
    }

    /// Approximate memory held, for the byte bound.
    public var cost: Int {
        128 + id.utf8.count + upstreamModel.utf8.count + modelName.utf8.count + keyLabel.utf8.count + content.utf8.count
            + (usageJSON?.utf8.count ?? 0) + (body?.count ?? 0)
    }

    /// The answer as a `chat.completion` body.
    public var completionJSON: [UInt8] {
        if let body { return body }
        let usage = usageJSON.map { #","usage":\#($0)"# } ?? ""
        let text = #"{"id":\#(JSONText.quoted(id)),"object":"chat.completion","created":\#(created),"model":\#(JSONText.quoted(upstreamModel)),"choices":[{"index":0,"message":{"role":"assistant","content":\#(JSONText.quoted(content))},"finish_reason":\#(JSONText.quoted(finishReason))}]\#(usage)}"#
        return Array(text.utf8)
    }

    /// The answer replayed as Server-Sent Events: a role chunk, the content, the finish chunk, usage, `[DONE]`.
    public var sseEvents: [UInt8] {
        let head = #"{"id":\#(JSONText.quoted(id)),"object":"chat.completion.chunk","created":\#(created),"model":\#(JSONText.quoted(upstreamModel)),"#
        var text = "data: " + head + #""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"# + "\n\n"
        if !content.isEmpty {
            text += "data: " + head + #""choices":[{"index":0,"delta":{"content":\#(JSONText.quoted(content))},"finish_reason":null}]}"# + "\n\n"
        }
        text += "data: " + head + #""choices":[{"index":0,"delta":{},"finish_reason":\#(JSONText.quoted(finishReason))}]}"# + "\n\n"
        if let usageJSON { text += "data: " + head + #""choices":[],"usage":\#(usageJSON)}"# + "\n\n" }
        text += "data: [DONE]\n\n"
        return Array(text.utf8)
    }

    /// An answer kept exactly as the upstream gave it (an embeddings list): served byte for byte, never
    /// replayed as a stream; nil unless it is a JSON object without an `error`.
    public static func verbatim(body: [UInt8], modelName: String, keyLabel: String) -> CachedAnswer? {
        let whole = body.withUnsafeBytes { raw -> Bool in
            var reader = JSONReader(bytes: raw)
            reader.skipSpace()
            var refused = false
            let ok = reader.fields(depth: 0) { r, key in
                if key == "error" { refused = true }
                return r.skipValue(depth: 1)
            }
            reader.skipSpace()
            return ok && !refused && reader.i == raw.count
        }
        guard whole else { return nil }
        var answer = CachedAnswer(
            id: "", created: 0, upstreamModel: "", modelName: modelName, keyLabel: keyLabel, content: "", finishReason: "stop", usageJSON: nil,
            body: body)
        answer.replayable = false
        return answer
    }

    /// Reads a non-streaming answer; nil unless it has exactly one complete text choice.
    public static func fromCompletion(body: [UInt8], modelName: String, keyLabel: String) -> CachedAnswer? {
        body.withUnsafeBytes { raw -> CachedAnswer? in
            var reader = JSONReader(bytes: raw)
            reader.skipSpace()
            var id = "", model = "", created = 0
            var content: String?
            var finish: String?
            var choices = 0
            var usage: String?
            var refused = false
            var toolCalls = false
            let ok = reader.fields(depth: 0) { r, key in
                switch key {
                case "id": if let s = r.string() { id = s; return true } else { return false }
                case "model": if let s = r.string() { model = s; return true } else { return false }
                case "created":
                    let start = r.i
                    guard r.skipValue(depth: 1) else { return false }
                    created = Int(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<r.i]), as: UTF8.self)) ?? 0
                    return true
                case "usage":
                    let start = r.i
                    guard r.skipValue(depth: 1) else { return false }
                    usage = String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<r.i]), as: UTF8.self)
                    return true
                case "choices":
                    guard r.peek() == UInt8(ascii: "[") else { return r.skipValue(depth: 1) }
                    r.i += 1
                    r.skipSpace()
                    if r.peek() == UInt8(ascii: "]") { r.i += 1; return true }
                    while true {
                        r.skipSpace()
                        choices += 1
                        let ok = r.fields(depth: 2) { r, key in
                            switch key {
                            case "finish_reason":
                                if r.peek() == UInt8(ascii: "\"") { finish = r.string(); return finish != nil }
                                return r.skipValue(depth: 3)
                            case "message":
                                return r.fields(depth: 3) { r, key in
                                    if key == "content", r.peek() == UInt8(ascii: "\"") { content = r.string(); return content != nil }
                                    if key == "tool_calls" { toolCalls = true }
                                    return r.skipValue(depth: 4)
                                }
                            case "error":
                                refused = true
                                return r.skipValue(depth: 3)
                            default:
                                return r.skipValue(depth: 3)
                            }
                        }
                        guard ok else { return false }
                        r.skipSpace()
                        if r.peek() == UInt8(ascii: ",") { r.i += 1; continue }
                        guard r.peek() == UInt8(ascii: "]") else { return false }
                        r.i += 1
                        return true
                    }
                case "error":
                    refused = true
                    return r.skipValue(depth: 1)
                default:
                    return r.skipValue(depth: 1)
                }
            }
            guard ok, choices == 1, !refused, isComplete(finishReason: finish), let finish else { return nil }
            var answer = CachedAnswer(
                id: id, created: created, upstreamModel: model, modelName: modelName, keyLabel: keyLabel, content: content ?? "",
                finishReason: finish, usageJSON: usage, body: body)
            answer.replayable = !toolCalls
            return answer
        }
    }
}
