import HTTPTypes
import NIOHTTP1
import SwitchyardCore

/// The request headers admission reads, taken once from whichever head the request came with: Hummingbird's
/// `HTTPFields`, or NIOHTTP1's `HTTPHeaders` on the channel handler's path (which never builds `HTTPFields`).
struct AdmissionHeaders: Sendable {
    var authorization: String?
    var contentType: String?
    var cacheControl: String?
    /// `x-switchyard-affinity`.
    var affinity: String?
    var connection: String?
    /// `x-api-key`, Anthropic's way to send the client token.
    var apiKey: String?

    static let apiKeyName = HTTPField.Name("x-api-key")!

    init(
        authorization: String? = nil, contentType: String? = nil, cacheControl: String? = nil, affinity: String? = nil, connection: String? = nil,
        apiKey: String? = nil
    ) {
        self.authorization = authorization
        self.contentType = contentType
        self.cacheControl = cacheControl
        self.affinity = affinity
        self.connection = connection
        self.apiKey = apiKey
    }

    init(_ fields: HTTPFields) {
        self.init(
            authorization: fields[.authorization], contentType: fields[.contentType], cacheControl: fields[.cacheControl],
            affinity: fields[ChatCompletionsRoute.affinity], connection: fields[.connection], apiKey: fields[Self.apiKeyName])
    }

    /// The headers as `/v1/messages` reads them: an `x-api-key` counts as the bearer token it is.
    var apiKeyAsBearer: AdmissionHeaders {
        guard authorization == nil, let apiKey else { return self }
        var fields = self
        fields.authorization = "Bearer " + apiKey
        return fields
    }

    /// One pass over the headers, names compared without regard to case and with no allocation; a repeated
    /// header's values are joined with ", ", as `HTTPFields`' subscript joins them.
    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            switch name.utf8.count {
            case 9 where name.equalsIgnoringASCIICase("x-api-key"): Self.join(&apiKey, value)
            case 10 where name.equalsIgnoringASCIICase("connection"): Self.join(&connection, value)
            case 12 where name.equalsIgnoringASCIICase("content-type"): Self.join(&contentType, value)
            case 13 where name.equalsIgnoringASCIICase("authorization"): Self.join(&authorization, value)
            case 13 where name.equalsIgnoringASCIICase("cache-control"): Self.join(&cacheControl, value)
            case 21 where name.equalsIgnoringASCIICase("x-switchyard-affinity"): Self.join(&affinity, value)
            default: break
            }
        }
    }

    private static func join(_ slot: inout String?, _ value: String) {
        slot = slot.map { $0 + ", " + value } ?? value
    }
}
