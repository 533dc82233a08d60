/// A conservative estimate of how many tokens a prompt costs, computed from its text without a tokenizer.
///
/// Over-estimating only sends a request to a larger-context model; under-estimating earns a
/// `context_length_exceeded` from upstream and a wasted attempt. So the rules lean high:
/// - ASCII text: one token per 3 bytes, rounded up. Tokenizers average about 4 characters per token on
///   English prose and 2.5 to 3.5 on code, numbers and JSON, so this is ~33% above prose and close to code.
/// - Any other text: one token per UTF-8 byte. That is the worst case of byte-fallback tokenizers
///   (Llama 2 and Phi-3 spell an unknown CJK character as 3 byte tokens, an emoji as 4), and no byte-level
///   tokenizer can produce more tokens than bytes.
/// - Each message: 4 tokens of framing (role markers, separators); 3 more prime the reply.
/// - Each image part: 765 tokens (a high-detail 512×512 tile set), since its size is unknown here.
public struct TokenEstimate: Sendable, Equatable {
    public static let perMessage = 4
    public static let replyPriming = 3
    public static let perImage = 765

    /// Bytes of text seen, split by how they are charged.
    public struct TextCost: Sendable, Equatable {
        public var asciiBytes = 0
        public var otherBytes = 0

        public init(asciiBytes: Int = 0, otherBytes: Int = 0) {
            self.asciiBytes = asciiBytes
            self.otherBytes = otherBytes
        }

        public init(_ text: some StringProtocol) {
            for byte in text.utf8 {
                if byte < 0x80 { asciiBytes += 1 } else { otherBytes += 1 }
            }
        }

        public var tokens: Int { (asciiBytes + 2) / 3 + otherBytes }

        public static func += (lhs: inout TextCost, rhs: TextCost) {
            lhs.asciiBytes += rhs.asciiBytes
            lhs.otherBytes += rhs.otherBytes
        }
    }

    public private(set) var tokens: Int = replyPriming

    public init() {}

    /// Adds one message whose text (role, name, content, tool-call arguments) costs `text`.
    public mutating func addMessage(text: TextCost, images: Int = 0) {
        tokens += Self.perMessage + text.tokens + images * Self.perImage
    }

    /// Adds text outside messages that the model still reads (tool schemas).
    public mutating func addExtra(_ text: TextCost) {
        tokens += text.tokens
    }

    /// The estimate for plain messages given as (role, content) pairs.
    public static func messages(_ messages: [(role: String, content: String)]) -> Int {
        var estimate = TokenEstimate()
        for message in messages {
            var cost = TextCost(message.role)
            cost += TextCost(message.content)
            estimate.addMessage(text: cost)
        }
        return estimate.tokens
    }
}
