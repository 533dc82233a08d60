import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Sends chat requests to providers over one shared, explicitly configured HTTP client.
///
/// HTTP/1.1 only unless a provider opts into HTTP/2 (AsyncHTTPClient has hung over HTTP/2 when a server
/// answers before reading the body). No redirects, no decompression; a pool sized for the load.
public final class UpstreamClient: Sendable {
    public let http: HTTPClient

    public init(connectTimeout: Duration = .seconds(5), readTimeout: Duration = .seconds(30), connectionsPerHost: Int = 256) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .nanoseconds(connectTimeout.nanoseconds), read: .nanoseconds(readTimeout.nanoseconds))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
        configuration.httpVersion = .http1Only
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// Sends one attempt; returns once the response head arrives (or `timeout` passes).
    func send(
        provider: Provider, key: APIKey, body: ByteBuffer, stream: Bool, attempt: Int, timeout: Duration
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: provider.baseURL + "/chat/completions")
        request.method = .POST
        request.headers.reserveCapacity(6 + provider.headers.count)
        request.headers.add(name: "authorization", value: "Bearer " + key.secret.value)
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: stream ? "text/event-stream" : "application/json")
        for header in provider.headers { request.headers.add(name: header.name, value: header.value) }
        if provider.kind == .generic { request.headers.add(name: "x-switchyard-attempt", value: String(attempt)) }
        request.body = .bytes(body)
        return try await http.execute(request, timeout: .nanoseconds(max(timeout.nanoseconds, 1_000_000)))
    }

    /// A GET with a key, for re-probing keys and reading catalogs.
    func get(url: String, key: APIKey?, timeout: Duration) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        if let key { request.headers.add(name: "authorization", value: "Bearer " + key.secret.value) }
        let response = try await http.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
        let body = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), body)
    }
}
