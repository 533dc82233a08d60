/// A complete answer kept for replay, in the parts needed to answer either way: as the JSON of a
/// `chat.completion` or as a stream of `chat.completion.chunk` events.
///
/// A non-streaming answer is kept as its bytes alone, with where its parts stand in them: the parts are read out
/// only when a replay needs them (a hit for a streaming request, the shared tier), not for every answer stored.
public struct CachedAnswer: Sendable, Equatable {
    /// Our model name and key label, for the headers of a hit.
    public var modelName: String
    public var keyLabel: String
    /// The original JSON body when the answer came non-streaming: served byte for byte.
    public private(set) var body: [UInt8]?
    /// False for tool-call answers: their JSON is served as is, but they are not replayed as a stream.
    public var replayable = true
    public let created: Int
    public let finishReason: String
    private var parts: Parts

    /// The parts as given one by one (a streamed answer, one from the shared tier), or their places in `body`.
    private enum Parts: Sendable, Equatable {
        case given(id: String, upstreamModel: String, content: String, usageJSON: String?)
        /// JSON string tokens (quotes included) and the usage object's text, as ranges of `body`.
        case inBody(id: Range<Int>?, upstreamModel: Range<Int>?, content: Range<Int>?, usageJSON: Range<Int>?)
    }

    public var id: String {
        switch parts {
        case .given(let id, _, _, _): id
        case .inBody(let id, _, _, _): text(id)
        }
    }

    /// The upstream model id that answered (as in the original `model` field).
    public var upstreamModel: String {
        switch parts {
        case .given(_, let model, _, _): model
        case .inBody(_, let model, _, _): text(model)
        }
    }

    public var content: String {
        switch parts {
        case .given(_, _, let content, _): content
        case .inBody(_, _, let content, _): text(content)
        }
    }

    /// The usage object's JSON, if the answer carried one.
    public var usageJSON: String? {
        switch parts {
        case .given(_, _, _, let usage): usage
        case .inBody(_, _, _, let usage): usage.map { range in body.map { String(decoding: $0[range], as: UTF8.self) } ?? "" }
        }
    }

    public init(
        id: String, created: Int, upstreamModel: String, modelName: String, keyLabel: String, content: String, finishReason: String,
        usageJSON: String?, body: [UInt8]?
    ) {
        self.modelName = modelName
        self.keyLabel = keyLabel
        self.body = body
        self.created = created
        self.finishReason = finishReason
        parts = .given(id: id, upstreamModel: upstreamModel, content: content, usageJSON: usageJSON)
    }

    private init(body: [UInt8], parts: Parts, created: Int, finishReason: String, modelName: String, keyLabel: String) {
        self.modelName = modelName
        self.keyLabel = keyLabel
        self.body = body
        self.created = created
        self.finishReason = finishReason
        self.parts = parts
    }

    /// The string token at `range` of the body, decoded; empty when there is none.
    private func text(_ range: Range<Int>?) -> String {
        guard let range, let body else { return "" }
        return body.withUnsafeBytes { raw in
            var reader = JSONReader(bytes: UnsafeRawBufferPointer(rebasing: raw[range]))
            return reader.string() ?? ""
        }
    }

    /// Only complete answers are stored: a `length` cut, an error or an unfinished answer never is.
    public static func isComplete(finishReason: String?) -> Bool {
        finishReason == "stop" || finishReason == "tool_calls"
    }

    /// What an answer costs in the byte bound before its text: the least any answer costs.
    public static let fixedCost = 128

    /// Approximate memory held, for the byte bound.
    public var cost: Int {
        let parts =
            switch parts {
            case .given(let id, let model, let content, let usage): id.utf8.count + model.utf8.count + content.utf8.count + (usage?.utf8.count ?? 0)
            case .inBody: 0
            }
        return Self.fixedCost + modelName.utf8.count + keyLabel.utf8.count + finishReason.utf8.count + parts + (body?.count ?? 0)
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

    /// Reads a non-streaming answer; nil unless it has exactly one complete text choice. Its parts are found, not
    /// copied out: the answer keeps `body` and their places in it.
    public static func fromCompletion(body: [UInt8], modelName: String, keyLabel: String) -> CachedAnswer? {
        body.withUnsafeBytes { raw -> CachedAnswer? in
            var reader = JSONReader(bytes: raw)
            reader.skipSpace()
            var id: Range<Int>?, model: Range<Int>?, content: Range<Int>?, usage: Range<Int>?
            var created = 0
            var finish: String?
            var choices = 0
            var refused = false
            var toolCalls = false
            /// The string token at the cursor, quotes included; nil when there is none.
            func stringToken(_ r: inout JSONReader) -> Range<Int>? {
                let start = r.i
                return r.skipString() == nil ? nil : start..<r.i
            }
            let ok = reader.fields(depth: 0) { r, key in
                switch key {
                case "id":
                    id = stringToken(&r)
                    return id != nil
                case "model":
                    model = stringToken(&r)
                    return model != nil
                case "created":
                    let start = r.i
                    guard r.skipValue(depth: 1) else { return false }
                    created = Int(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<r.i]), as: UTF8.self)) ?? 0
                    return true
                case "usage":
                    let start = r.i
                    guard r.skipValue(depth: 1) else { return false }
                    usage = start..<r.i
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
                                    if key == "content", r.peek() == UInt8(ascii: "\"") {
                                        content = stringToken(&r)
                                        return content != nil
                                    }
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
                body: body, parts: .inBody(id: id, upstreamModel: model, content: content, usageJSON: usage), created: created,
                finishReason: finish, modelName: modelName, keyLabel: keyLabel)
            answer.replayable = !toolCalls
            return answer
        }
    }
}
