#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What routing needs from a chat completions request, read in one pass over its bytes.
///
/// The body is forwarded upstream as received, with only `model` rewritten, so nothing here
/// builds a tree or re-encodes JSON: the scan validates the whole document, records where
/// `model` sits, and adds up message text for the token estimate.
public struct ChatRequestSummary: Sendable, Equatable {
    public var model: String = ""
    /// Byte range of the `model` value, quotes included, for an in-place rewrite.
    public var modelRange: Range<Int> = 0..<0
    public var stream = false
    public var maxTokens: Int?
    public var n: Int?
    public var messageCount = 0
    /// Role of the last message; `assistant` means the client sent a prefill.
    public var lastRole: String = ""
    public var estimatedPromptTokens = 0
    /// Top-level field names, to apply route defaults only where the client left a field out.
    public var fields: [String] = []
    /// Byte offset of the closing `}` of the top-level object, where defaults are inserted.
    public var objectEnd = 0
    /// Byte offset of the closing `]` of `messages`, where a continuation's assistant prefill is appended.
    public var messagesEnd = 0

    public init() {}

    public func has(field name: String) -> Bool { fields.contains(name) }
}

/// Why a request body was refused, in words a client developer can act on.
public struct RequestScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int?

    public var description: String {
        offset.map { "\(message) (at byte \($0))" } ?? message
    }
}

public enum ChatRequestScan {
    /// JSON nested deeper than this is refused: no legitimate request needs it, and it bounds the work.
    public static let maxDepth = 64

    public static func scan(_ bytes: UnsafeRawBufferPointer) throws(RequestScanError) -> ChatRequestSummary {
        var scanner = Scanner(bytes: bytes)
        return try scanner.request()
    }

    public static func scan(_ bytes: [UInt8]) throws(RequestScanError) -> ChatRequestSummary {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(RequestScanError) in try scan(raw) } }
        return try result.get()
    }

    public static func scan(_ text: String) throws(RequestScanError) -> ChatRequestSummary {
        try scan(Array(text.utf8))
    }
}

private struct Scanner {
    let bytes: UnsafeRawBufferPointer
    var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    // MARK: the request shape

    mutating func request() throws(RequestScanError) -> ChatRequestSummary {
        var summary = ChatRequestSummary()
        var estimate = TokenEstimate()
        var sawModel = false
        var sawMessages = false
        skipSpace()
        guard peek() == UInt8(ascii: "{") else {
            throw fail(i >= bytes.count ? "the body is empty; send a JSON object" : "the body must be a JSON object")
        }
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                let key = try string(cost: nil)
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                summary.fields.append(key)
                switch key {
                case "model":
                    let start = i
                    guard peek() == UInt8(ascii: "\"") else { throw fail("'model' must be a string") }
                    summary.model = try string(cost: nil)
                    summary.modelRange = start..<i
                    sawModel = true
                case "messages":
                    try messages(&summary, &estimate)
                    sawMessages = true
                case "stream":
                    switch peek() {
                    case UInt8(ascii: "t"): try literal("true"); summary.stream = true
                    case UInt8(ascii: "f"): try literal("false"); summary.stream = false
                    case UInt8(ascii: "n"): try literal("null")
                    default: throw fail("'stream' must be true or false")
                    }
                case "max_tokens", "max_completion_tokens":
                    if let value = try optionalInteger(key) { summary.maxTokens = value }
                case "n":
                    summary.n = try optionalInteger(key)
                case "tools", "functions":
                    var cost = TokenEstimate.TextCost()
                    try value(depth: 1, cost: &cost)
                    estimate.addExtra(cost)
                default:
                    var ignored = TokenEstimate.TextCost()
                    try value(depth: 1, cost: &ignored)
                }
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                summary.objectEnd = i
                try expect(UInt8(ascii: "}"), "expected ',' or '}' after a field")
                break
            }
        }
        skipSpace()
        if i < bytes.count { throw fail("unexpected data after the JSON object") }
        guard sawModel else { throw RequestScanError(message: "'model' is required: name a route or a model", offset: nil) }
        guard sawMessages else { throw RequestScanError(message: "'messages' is required", offset: nil) }
        if summary.model.isEmpty { throw RequestScanError(message: "'model' must not be empty", offset: nil) }
        if let maxTokens = summary.maxTokens, !(1...10_000_000).contains(maxTokens) {
            throw RequestScanError(message: "'max_tokens' must be between 1 and 10000000", offset: nil)
        }
        if let n = summary.n, !(1...128).contains(n) {
            throw RequestScanError(message: "'n' must be between 1 and 128", offset: nil)
        }
        summary.estimatedPromptTokens = estimate.tokens
        return summary
    }

    mutating func optionalInteger(_ name: String) throws(RequestScanError) -> Int? {
        if peek() == UInt8(ascii: "n") {
            try literal("null")
            return nil
        }
        let start = i
        try number()
        guard let value = Int(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)) else {
            throw RequestScanError(message: "'\(name)' must be a whole number", offset: start)
        }
        return value
    }

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
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                i += 1
                continue
            }
            summary.messagesEnd = i
            try expect(UInt8(ascii: "]"), "expected ',' or ']' in 'messages'")
            return
        }
    }

    mutating func message(_ summary: inout ChatRequestSummary, _ estimate: inout TokenEstimate) throws(RequestScanError) {
        guard peek() == UInt8(ascii: "{") else { throw fail("each message must be an object with 'role' and 'content'") }
        i += 1
        var cost = TokenEstimate.TextCost()
        var images = 0
        var role: String?
        skipSpace()
        if peek() != UInt8(ascii: "}") {
            while true {
                skipSpace()
                let key = try string(cost: nil)
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                switch key {
                case "role":
                    guard peek() == UInt8(ascii: "\"") else { throw fail("a message's 'role' must be a string") }
                    var roleCost = TokenEstimate.TextCost()
                    role = try string(cost: &roleCost)
                    cost += roleCost
                case "content":
                    try content(&cost, &images)
                default:
                    // name, tool_calls, tool_call_id, …: the model reads these too.
                    try value(depth: 3, cost: &cost)
                }
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "expected ',' or '}' in a message")
                break
            }
        } else {
            i += 1
        }
        guard let role else { throw fail("message \(summary.messageCount) has no 'role'") }
        summary.lastRole = role
        estimate.addMessage(text: cost, images: images)
    }

    mutating func content(_ cost: inout TokenEstimate.TextCost, _ images: inout Int) throws(RequestScanError) {
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try string(cost: &cost)
        case UInt8(ascii: "n"):
            try literal("null")
        case UInt8(ascii: "["):
            // Content parts: text parts are charged as text, image parts at a fixed price.
            let start = i
            var partsCost = TokenEstimate.TextCost()
            try value(depth: 3, cost: &partsCost)
            cost += partsCost
            images += count(of: "image_url", in: start..<i)
        default:
            throw fail("a message's 'content' must be a string, an array of parts, or null")
        }
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

    // MARK: JSON

    func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    func fail(_ message: String) -> RequestScanError {
        RequestScanError(message: i >= bytes.count ? "\(message); the body ended early" : message, offset: min(i, bytes.count))
    }

    mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ message: String? = nil) throws(RequestScanError) {
        guard peek() == byte else {
            throw fail(message ?? "invalid JSON: expected '\(Character(Unicode.Scalar(byte)))'")
        }
        i += 1
    }

    mutating func literal(_ word: StaticString) throws(RequestScanError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, word.utf8Start, n) == 0 else {
            throw fail("invalid JSON value")
        }
        i += n
    }

    /// Any JSON value; string contents are charged to `cost`.
    mutating func value(depth: Int, cost: inout TokenEstimate.TextCost) throws(RequestScanError) {
        guard depth <= ChatRequestScan.maxDepth else {
            throw fail("JSON nested deeper than \(ChatRequestScan.maxDepth) levels")
        }
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try skipString(cost: &cost)
        case UInt8(ascii: "{"):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                i += 1
                return
            }
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("invalid JSON: expected a field name") }
                _ = try skipString(cost: &cost)
                skipSpace()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                try value(depth: depth + 1, cost: &cost)
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "invalid JSON: expected ',' or '}'")
                return
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                i += 1
                return
            }
            while true {
                skipSpace()
                try value(depth: depth + 1, cost: &cost)
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "]"), "invalid JSON: expected ',' or ']'")
                return
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case .some(let c) where c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39):
            try number()
        default:
            throw fail("invalid JSON value")
        }
    }

    mutating func number() throws(RequestScanError) {
        let start = i
        if peek() == UInt8(ascii: "-") { i += 1 }
        guard let first = peek(), first >= 0x30, first <= 0x39 else { throw fail("invalid JSON number") }
        if first == 0x30 {
            i += 1
        } else {
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard let c = peek(), c >= 0x30, c <= 0x39 else { throw fail("invalid JSON number") }
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            i += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
            guard let c = peek(), c >= 0x30, c <= 0x39 else { throw fail("invalid JSON number") }
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if i - start > 400 { throw RequestScanError(message: "a number is too long", offset: start) }
    }

    /// A string decoded to Swift; used for field names and the few values routing reads.
    mutating func string(cost: UnsafeMutablePointer<TokenEstimate.TextCost>?) throws(RequestScanError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw fail("invalid JSON: expected a string") }
        var localCost = TokenEstimate.TextCost()
        let start = i + 1
        let hadEscape = try skipString(cost: &localCost)
        cost?.pointee += localCost
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<(i - 1)])
        if !hadEscape { return String(decoding: raw, as: UTF8.self) }
        return JSONUnescape.string(raw)
    }

    mutating func string(cost: inout TokenEstimate.TextCost) throws(RequestScanError) -> String {
        try withUnsafeMutablePointer(to: &cost) { p throws(RequestScanError) in try string(cost: p) }
    }

    /// Moves past a string, validating escapes and UTF-8; returns whether it held escapes.
    mutating func skipString(cost: inout TokenEstimate.TextCost) throws(RequestScanError) -> Bool {
        i += 1
        var hadEscape = false
        var ascii = 0
        var other = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                cost.asciiBytes += ascii
                cost.otherBytes += other
                return hadEscape
            } else if c == UInt8(ascii: "\\") {
                hadEscape = true
                i += 1
                guard let e = peek() else { break }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                    ascii += 1
                case UInt8(ascii: "u"):
                    i += 1
                    let scalar = try hex4()
                    if scalar < 0x80 {
                        ascii += 1
                    } else if scalar < 0x800 {
                        other += 2
                    } else if scalar >= 0xD800 && scalar < 0xDC00 {
                        // High surrogate: must be followed by a low one; the pair is one 4-byte scalar.
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("invalid JSON string: unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid JSON string: unpaired surrogate") }
                        other += 4
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("invalid JSON string: unpaired surrogate")
                    } else {
                        other += 3
                    }
                default:
                    throw fail("invalid JSON string: bad escape")
                }
            } else if c < 0x20 {
                throw fail("invalid JSON string: control character")
            } else if c < 0x80 {
                ascii += 1
                i += 1
            } else {
                let n = try utf8Sequence()
                other += n
            }
        }
        throw fail("invalid JSON: unterminated string")
    }

    mutating func hex4() throws(RequestScanError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("invalid JSON string: bad \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw fail("invalid JSON string: bad \\u escape")
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence at `i` and moves past it.
    mutating func utf8Sequence() throws(RequestScanError) -> Int {
        let c = bytes[i]
        let n: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; upper = 0x9F
        case 0xF0: n = 4; lower = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; upper = 0x8F
        default: throw fail("the body is not valid UTF-8")
        }
        guard i + n <= bytes.count else { throw fail("the body is not valid UTF-8") }
        let second = bytes[i + 1]
        guard second >= lower, second <= upper else { throw fail("the body is not valid UTF-8") }
        for k in 2..<max(2, n) where bytes[i + k] & 0xC0 != 0x80 {
            throw fail("the body is not valid UTF-8")
        }
        i += n
        return n
    }

}
