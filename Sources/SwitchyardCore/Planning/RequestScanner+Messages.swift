#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `messages`, read in the same pass as the rest: charged to the token estimate, and checked as strictly as
/// the providers check them, so a request every upstream would refuse is answered 400 here instead of
/// spending a (free-tier) request.
extension RequestScanner {
    /// The roles OpenAI-compatible upstreams accept.
    static let roles = ["system", "developer", "user", "assistant", "tool", "function"]
    /// The content part types of the chat completions API.
    static let partTypes: [StaticString] = ["text", "image_url", "input_audio", "file", "refusal"]
    static let partTypeList = "text, image_url, input_audio, file, refusal"

    mutating func messages(_ summary: inout ChatRequestSummary, _ estimate: inout TokenEstimate) throws(RequestScanError) {
        guard peek() == UInt8(ascii: "[") else { throw fail("'messages' must be an array of message objects") }
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            throw fail("'messages' must contain at least one message")
        }
        while true {
            skipSpace()
            try message(&summary, &estimate)
            summary.messageCount += 1
            if try another(UInt8(ascii: "]"), "expected ',' or ']' in 'messages'") { continue }
            summary.messagesEnd = i - 1
            return
        }
    }

    /// One message. Besides its cost: a known `role`; `tool_call_id` on a `tool` message; `content` a string,
    /// an array of known parts, or null (or left out) only beside an assistant's `tool_calls`/`function_call`.
    mutating func message(_ summary: inout ChatRequestSummary, _ estimate: inout TokenEstimate) throws(RequestScanError) {
        guard peek() == UInt8(ascii: "{") else { throw fail("each message must be an object with 'role' and 'content'") }
        let index = summary.messageCount
        let start = i
        i += 1
        var cost = TokenEstimate.TextCost()
        var images = 0
        var role: String?
        var content = ContentSeen.missing
        var toolCalls = false
        var toolCallID = false
        skipSpace()
        if peek() != UInt8(ascii: "}") {
            while true {
                skipSpace()
                let key = try string(cost: nil)
                try toFieldValue()
                switch key {
                case "role":
                    guard peek() == UInt8(ascii: "\"") else { throw fail("a message's 'role' must be a string") }
                    let roleStart = i
                    var roleCost = TokenEstimate.TextCost()
                    let name = try string(cost: &roleCost)
                    guard Self.roles.contains(name) else {
                        throw RequestScanError(
                            message: "messages[\(index)].role: '\(name.prefix(64))' is not one of \(Self.roles.joined(separator: ", "))", offset: roleStart)
                    }
                    role = name
                    cost += roleCost
                case "content":
                    content = try self.content(&cost, &images, message: index)
                case "tool_calls", "function_call":
                    if peek() != UInt8(ascii: "n") { toolCalls = true }
                    try value(depth: 3, cost: &cost)
                case "tool_call_id":
                    switch peek() {
                    case UInt8(ascii: "\""): toolCallID = true
                    case UInt8(ascii: "n"): break
                    default: throw fail("messages[\(index)].tool_call_id: must be a string")
                    }
                    try value(depth: 3, cost: &cost)
                default:
                    // name, …: the model reads these too.
                    try value(depth: 3, cost: &cost)
                }
                if try another(UInt8(ascii: "}"), "expected ',' or '}' in a message") { continue }
                break
            }
        } else {
            i += 1
        }
        guard let role else { throw fail("message \(index) has no 'role'") }
        if role == "tool", !toolCallID {
            throw RequestScanError(message: "messages[\(index)].tool_call_id: required for a 'tool' message", offset: start)
        }
        if content != .given, role != "assistant" || !toolCalls {
            let what = content == .null ? "null is only allowed" : "required, except"
            throw RequestScanError(
                message: "messages[\(index)].content: \(what) in an assistant message with 'tool_calls' or 'function_call'", offset: start)
        }
        summary.lastRole = role
        estimate.addMessage(text: cost, images: images)
    }

    enum ContentSeen {
        case missing, null, given
    }

    mutating func content(_ cost: inout TokenEstimate.TextCost, _ images: inout Int, message: Int) throws(RequestScanError) -> ContentSeen {
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try skipString(cost: &cost)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "["):
            // Content parts: all their text is charged (the model reads it), image parts at a fixed price.
            let start = i
            try parts(&cost, message: message)
            images += count(of: "image_url", in: start..<i)
        default:
            throw fail("a message's 'content' must be a string, an array of parts, or null")
        }
        return .given
    }

    /// An array of content parts, walked as the generic value walk would (same cost, same depth), with each
    /// part's `type` checked on its bytes.
    mutating func parts(_ cost: inout TokenEstimate.TextCost, message: Int) throws(RequestScanError) {
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            i += 1
            return
        }
        var part = 0
        while true {
            skipSpace()
            try contentPart(&cost, message: message, part: part)
            part += 1
            guard try another(UInt8(ascii: "]")) else { return }
        }
    }

    mutating func contentPart(_ cost: inout TokenEstimate.TextCost, message: Int, part: Int) throws(RequestScanError) {
        let start = i
        guard peek() == UInt8(ascii: "{") else {
            throw fail("messages[\(message)].content[\(part)]: a content part must be an object with a 'type'")
        }
        i += 1
        var typed = false
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("invalid JSON: expected a field name") }
                let keyStart = i + 1
                _ = try skipString(cost: &cost)
                let isType = spells("type", at: keyStart, count: i - 1 - keyStart)
                try toFieldValue()
                if isType {
                    try partType(&cost, message: message, part: part)
                    typed = true
                } else {
                    try value(depth: 5, cost: &cost)
                }
                guard try another(UInt8(ascii: "}")) else { break }
            }
        }
        guard typed else {
            throw RequestScanError(message: "messages[\(message)].content[\(part)]: a content part needs a 'type' (\(Self.partTypeList))", offset: start)
        }
    }

    /// A part's `type`, compared on its bytes: nothing is allocated unless it is unknown.
    mutating func partType(_ cost: inout TokenEstimate.TextCost, message: Int, part: Int) throws(RequestScanError) {
        let start = i
        guard peek() == UInt8(ascii: "\"") else { throw fail("messages[\(message)].content[\(part)].type: must be a string") }
        let escaped = try skipString(cost: &cost)
        let length = i - 1 - (start + 1)
        if !escaped, Self.partTypes.contains(where: { spells($0, at: start + 1, count: length) }) { return }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[(start + 1)..<(i - 1)])
        let name = escaped ? JSONUnescape.string(raw) : String(decoding: raw, as: UTF8.self)
        if Self.partTypes.contains(where: { $0.description == name }) { return }
        throw RequestScanError(
            message: "messages[\(message)].content[\(part)].type: '\(name.prefix(64))' is not one of \(Self.partTypeList)", offset: start)
    }

    /// Whether the `count` bytes at `start` spell `word`.
    func spells(_ word: StaticString, at start: Int, count: Int) -> Bool {
        guard word.utf8CodeUnitCount == count else { return false }
        for k in 0..<count where bytes[start + k] != word.utf8Start[k] { return false }
        return true
    }

    func count(of needle: StaticString, in range: Range<Int>) -> Int {
        let n = needle.utf8CodeUnitCount
        guard range.count >= n else { return 0 }
        var found = 0
        var j = range.lowerBound
        while j <= range.upperBound - n {
            if memcmp(bytes.baseAddress! + j, needle.utf8Start, n) == 0 {
                found += 1
                j += n
            } else {
                j += 1
            }
        }
        return found
    }
}
