import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore

/// An error the gateway answers with, in OpenAI's shape: `{"error":{"message","type","code"}}`.
public struct GatewayError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var code: String?
    /// Seconds, for 503 and 429.
    public var retryAfter: Int?
    public var extraHeaders: [(HTTPField.Name, String)] = []

    public init(status: HTTPResponse.Status, message: String, type: String, code: String?, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.retryAfter = retryAfter
    }

    public var json: String {
        let code = self.code.map { JSONText.quoted($0) } ?? "null"
        return #"{"error":{"message":\#(JSONText.quoted(message)),"type":\#(JSONText.quoted(type)),"param":null,"code":\#(code)}}"#
    }

    /// The error as a Server-Sent Event, for a stream that cannot be finished.
    public var sseEvent: String { "data: \(json)\n\n" }

    public func response(headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        for (name, value) in extraHeaders { headers[name] = value }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    /// What is logged for a request whose client went away before its answer (nginx's 499); nobody reads it.
    static let clientClosed = GatewayError(status: .init(code: 499), message: "client closed the request", type: "cancelled", code: nil)

    static func badRequest(_ message: String, code: String? = nil) -> GatewayError {
        GatewayError(status: .badRequest, message: message, type: "invalid_request_error", code: code)
    }
}
