/// An error in Anthropic's shape, `{"type":"error","error":{"type":…,"message":…}}`, with Anthropic's status.
///
/// Clients of the Messages API (the Anthropic SDKs, coding agents) pick their exception class and retry rule
/// from the status and `error.type`, so an OpenAI-shaped gateway error must be re-spoken, not passed on:
/// the SDKs retry 429, 529 and other 5xx answers and raise `BadRequestError` for a 400.
public struct AnthropicError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var type: String
    public var message: String

    public init(status: Int, type: String, message: String) {
        self.status = status
        self.type = type
        self.message = message
    }

    /// A request the client must fix: 400 `invalid_request_error`.
    public static func invalidRequest(_ message: String) -> AnthropicError {
        AnthropicError(status: 400, type: "invalid_request_error", message: message)
    }

    /// The Anthropic status and type for a gateway (or upstream) error answered with `status`.
    ///
    /// 503 ("nothing usable right now") becomes 529 `overloaded_error`, the status Anthropic's clients treat
    /// as "busy, try again"; a 504 deadline stays 504 as an `api_error`. Other 4xx are `invalid_request_error`
    /// and other 5xx `api_error` with their own status, as Anthropic documents for statuses it does not list.
    public static func from(status: Int, message: String) -> AnthropicError {
        let mapped: (Int, String) =
            switch status {
            case 401: (401, "authentication_error")
            case 402: (402, "billing_error")
            case 403: (403, "permission_error")
            case 404: (404, "not_found_error")
            case 413: (413, "request_too_large")
            case 429: (429, "rate_limit_error")
            case 503, 529: (529, "overloaded_error")
            case 400..<500: (status, "invalid_request_error")
            default: (status >= 500 && status < 600 ? status : 500, "api_error")
            }
        return AnthropicError(status: mapped.0, type: mapped.1, message: message)
    }

    /// The same for an error body in OpenAI's shape (`{"error":{"message":…}}`, also the array and
    /// integer-code variants upstreams send); the message is kept, a body without one gets a generic message.
    public static func from(status: Int, openAIBody: [UInt8]) -> AnthropicError {
        let tree = JSONTree.read(openAIBody)
        let error = tree?["error"] ?? tree?.array?.first?["error"]
        let message = error?["message"]?.string ?? error?.string ?? "the upstream answered with status \(status)"
        return from(status: status, message: message)
    }

    /// The body of the error answer.
    public var json: String {
        #"{"type":"error","error":{"type":\#(JSONText.quoted(type)),"message":\#(JSONText.quoted(message))}}"#
    }

    public var body: [UInt8] { Array(json.utf8) }

    /// The error as a Server-Sent Event, for a stream that cannot be finished: Anthropic's clients raise it
    /// instead of treating what came before as a complete message.
    public var sseEvent: [UInt8] { Array("event: error\ndata: \(json)\n\n".utf8) }

    public var description: String { "\(status) \(type): \(message)" }
}
