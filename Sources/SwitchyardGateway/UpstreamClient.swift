import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardCore

/// Sends chat requests to providers over explicitly configured AsyncHTTPClients: one per event loop, so an
/// upstream call runs on the event loop of the client connection it answers.
///
/// With one client for the whole group, the pool hands out whichever idle connection it finds, often one on
/// the other loop: each request then crosses threads twice, and at low load every crossing is a wake-up
/// (measured: three `write`s per request instead of one, and 2-3x the CPU per request under the bench).
/// HTTP/1.1 only (AsyncHTTPClient has hung over HTTP/2 when a server answers before reading the body);
/// no redirects, no decompression; a pool sized for the load.
public final class UpstreamClient: Sendable {
    /// One client per event loop of the group, looked up by the loop's identity.
    private let clients: [ObjectIdentifier: HTTPClient]
    /// For calls made outside any request (probes, catalog reads).
    private let fallback: HTTPClient

    public init(
        connectTimeout: Duration = .seconds(5), readTimeout: Duration = .seconds(30), connectionsPerHost: Int = 256,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .nanoseconds(connectTimeout.nanoseconds), read: .nanoseconds(readTimeout.nanoseconds))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
        configuration.httpVersion = .http1Only
        var clients: [ObjectIdentifier: HTTPClient] = [:]
        for loop in group.makeIterator() {
            clients[ObjectIdentifier(loop)] = HTTPClient(eventLoopGroup: loop, configuration: configuration)
        }
        self.clients = clients
        fallback = clients.values.first ?? HTTPClient(eventLoopGroup: group, configuration: configuration)
    }

    public func shutdown() async throws {
        for client in clients.values { try await client.shutdown() }
    }

    /// The client whose connections live on `loop` (the requesting connection's loop), else any.
    func client(on loop: (any EventLoop)?) -> HTTPClient {
        guard let loop else { return fallback }
        return clients[ObjectIdentifier(loop)] ?? fallback
    }

    /// Sends one attempt on `loop`'s connections; returns once the response head arrives (or `timeout` passes).
    func send(
        provider: Provider, key: APIKey, body: ByteBuffer, stream: Bool, attempt: Int, timeout: Duration, on loop: (any EventLoop)?
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
        return try await client(on: loop).execute(request, timeout: .nanoseconds(max(timeout.nanoseconds, 1_000_000)))
    }

    /// A GET with a key, for re-probing keys and reading catalogs.
    func get(url: String, key: APIKey?, timeout: Duration) async throws -> (status: Int, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        if let key { request.headers.add(name: "authorization", value: "Bearer " + key.secret.value) }
        let response = try await fallback.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
        let body = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), body)
    }
}
