import Foundation

/// What an upstream's rate-limit headers say is left of a quota, read from any answer, success or not.
///
/// Groq and OpenAI send `x-ratelimit-{remaining,reset}-{requests,tokens}` with resets as durations (`2m59.56s`);
/// OpenRouter sends `X-RateLimit-Remaining` / `X-RateLimit-Reset` with the reset in epoch milliseconds.
/// Learning these lets the planner step aside before the provider says no.
public struct QuotaReading: Sendable, Equatable {
    /// Requests the upstream will still take before `requestsReset`.
    public var remainingRequests: Int?
    public var requestsReset: Timestamp?
    /// Tokens left before `tokensReset`; only an empty token budget blocks (a request's size is an estimate).
    public var remainingTokens: Int?
    public var tokensReset: Timestamp?

    public init(remainingRequests: Int? = nil, requestsReset: Timestamp? = nil, remainingTokens: Int? = nil, tokensReset: Timestamp? = nil) {
        self.remainingRequests = remainingRequests
        self.requestsReset = requestsReset
        self.remainingTokens = remainingTokens
        self.tokensReset = tokensReset
    }

    /// Reads the rate-limit headers in one pass; nil when the answer carries none worth knowing.
    public static func read(_ headers: some Sequence<(name: String, value: String)>, now: Timestamp) -> QuotaReading? {
        var reading = QuotaReading()
        var seen = false
        for (name, value) in headers {
            guard name.utf8.count >= 17, name.hasPrefixIgnoringASCIICase("x-ratelimit-") else { continue }
            switch name.lowercased() {
            case "x-ratelimit-remaining-requests", "x-ratelimit-remaining":
                reading.remainingRequests = count(value)
            case "x-ratelimit-reset-requests", "x-ratelimit-reset":
                reading.requestsReset = instant(value, now: now)
            case "x-ratelimit-remaining-tokens":
                reading.remainingTokens = count(value)
            case "x-ratelimit-reset-tokens":
                reading.tokensReset = instant(value, now: now)
            default:
                continue
            }
            seen = true
        }
        guard seen else { return nil }
        // A count without its reset says nothing usable about when to come back.
        if reading.requestsReset == nil { reading.remainingRequests = nil }
        if reading.tokensReset == nil { reading.remainingTokens = nil }
        return reading.remainingRequests == nil && reading.remainingTokens == nil ? nil : reading
    }

    /// A reset given as a duration (`7.66s`, `2m59.56s`), seconds, epoch seconds or epoch milliseconds.
    static func instant(_ text: String, now: Timestamp) -> Timestamp? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let value = Double(trimmed), value >= 0 {
            if value > 1e12 { return Timestamp(millisecondsSinceEpoch: Int64(value)) }
            if value > 1e9 { return Timestamp(secondsSinceEpoch: value) }
            return now + .milliseconds(Int64(value * 1000))
        }
        return ValueParsing.duration(trimmed).map { now + $0 }
    }

    static func count(_ text: String) -> Int? {
        Int(text.trimmingCharacters(in: .whitespaces)).map { max(0, $0) }
    }
}
