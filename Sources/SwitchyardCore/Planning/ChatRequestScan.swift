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
        var scanner = RequestScanner(bytes: bytes)
        return try scanner.request()
    }

    public static func scan(_ bytes: [UInt8]) throws(RequestScanError) -> ChatRequestSummary {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(RequestScanError) in try scan(raw) } }
        return try result.get()
    }

    public static func scan(_ text: String) throws(RequestScanError) -> ChatRequestSummary {
        try scan(Array(text.utf8))
    }

    /// Checks that `bytes` hold exactly one JSON value, by the scan's own strict rules (escapes, UTF-8, numbers,
    /// depth): for documents read whole elsewhere, such as a Messages API request before its translation.
    static func validateJSON(_ bytes: UnsafeRawBufferPointer) throws(RequestScanError) {
        var scanner = RequestScanner(bytes: bytes)
        try scanner.document()
    }
}

/// The scan's reader: one pass over the body, the request's shape here, messages and JSON in its extensions.
struct RequestScanner {
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
                try toFieldValue()
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
                if try another(UInt8(ascii: "}"), "expected ',' or '}' after a field") { continue }
                summary.objectEnd = i - 1
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
}
