import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwitchyardCore

/// Sends everything the gateway sends upstream (chat attempts, key probes, catalog reads) over SwiftNIO:
/// HTTP/1.1 keep-alive connections pooled per event loop and origin, TLS through NIOSSL with the system's
/// trust roots and full certificate checks (SNI for host names), no redirects, no decompression.
///
/// A request made for a client connection goes out on that connection's event loop (`on:`), so the
/// client's and the upstream's sockets are served by one thread with no hop between them.
public final class UpstreamClient: Sendable {
    let group: any EventLoopGroup
    let readTimeout: TimeAmount
    private let pools: [ObjectIdentifier: UpstreamPool]
    private let anyPool: UpstreamPool

    /// - Parameters:
    ///   - readTimeout: the longest silence between two parts of a response body.
    ///   - connectionsPerHost: open connections per origin and event loop, at most.
    ///   - idleTimeout: how long a connection may wait unused in its pool before it is closed.
    ///   - tls: for https upstreams; the default trusts the system's roots and checks certificates fully.
    public init(
        connectTimeout: Duration = .seconds(5), readTimeout: Duration = .seconds(30), connectionsPerHost: Int = 256, idleTimeout: Duration = .seconds(60),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, tls: TLSConfiguration = .makeClientConfiguration()
    ) {
        self.group = group
        self.readTimeout = .nanoseconds(readTimeout.nanoseconds)
        let limits = UpstreamPool.Limits(
            maxPerOrigin: connectionsPerHost, idleTimeout: .nanoseconds(idleTimeout.nanoseconds), connectTimeout: .nanoseconds(connectTimeout.nanoseconds))
        // Without trust roots (a system with none) https upstreams fail to connect with a clear reason.
        let tls = try? NIOSSLContext(configuration: tls)
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPool(loop: loop, limits: limits, tls: tls)
        }
        self.pools = pools
        let first = group.next()
        anyPool = pools[ObjectIdentifier(first)] ?? UpstreamPool(loop: first, limits: limits, tls: tls)
    }

    /// Closes every pooled connection.
    public func shutdown() async throws {
        for pool in pools.values {
            try await pool.loop.submit { pool.closeAll() }.get()
        }
    }

    /// The pool of `loop`, or of some loop of the group when `loop` is not one of them.
    func pool(for loop: (any EventLoop)?) -> UpstreamPool {
        guard let loop else { return pools[ObjectIdentifier(group.next())] ?? anyPool }
        return pools[ObjectIdentifier(loop)] ?? pools[ObjectIdentifier(group.next())] ?? anyPool
    }

    /// The request head of a chat attempt: the key in `Authorization`, the provider's extra headers.
    /// Made from a list in one go: `HTTPHeaders.add` checks each name, and these are fixed or from the table, which
    /// was checked when it loaded (`HeaderText`).
    static func chatHead(target: UpstreamTarget, provider: Provider, key: APIKey, bodyLength: Int, stream: Bool, attempt: Int) -> HTTPRequestHead {
        var list: [(String, String)] = []
        list.reserveCapacity(6 + provider.headers.count)
        list.append(("host", target.origin.hostHeader))
        list.append(("authorization", key.secret.bearer))
        list.append(("content-type", "application/json"))
        list.append(("accept", stream ? "text/event-stream" : "application/json"))
        list.append(("content-length", String(bodyLength)))
        for header in provider.headers { list.append((header.name, header.value)) }
        if provider.kind == .generic { list.append(("x-switchyard-attempt", String(attempt))) }
        return HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: HTTPHeaders(list))
    }

    /// Sends one attempt; returns once the response head arrives (or `timeout` passes: `UpstreamError.headTimeout`).
    func send(
        provider: Provider, target: UpstreamTarget?, key: APIKey, body: ByteBuffer, stream: Bool, attempt: Int, timeout: Duration,
        on loop: (any EventLoop)? = nil
    ) async throws -> UpstreamResponse {
        guard let target = target ?? UpstreamTarget(url: provider.baseURL)?.appending("/chat/completions") else {
            throw UpstreamError.badURL(provider.baseURL)
        }
        let head = Self.chatHead(target: target, provider: provider, key: key, bodyLength: body.readableBytes, stream: stream, attempt: attempt)
        return try await execute(target.origin, head: head, body: body, timeout: timeout, on: loop)
    }

    /// A GET with a key, for re-probing keys and reading catalogs.
    func get(url: String, key: APIKey?, timeout: Duration) async throws -> (status: Int, body: ByteBuffer) {
        guard let target = UpstreamTarget(url: url) else { throw UpstreamError.badURL(url) }
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.origin.hostHeader)
        headers.add(name: "accept", value: "application/json")
        if let key { headers.add(name: "authorization", value: key.secret.bearer) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.path, headers: headers)
        let response = try await execute(target.origin, head: head, body: ByteBuffer(), timeout: timeout, on: nil)
        let body = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), body)
    }

    /// Runs one exchange for an async caller on `loop`'s pool.
    func execute(
        _ origin: UpstreamOrigin, head: HTTPRequestHead, body: ByteBuffer, timeout: Duration, on loop: (any EventLoop)?
    ) async throws -> UpstreamResponse {
        let pool = pool(for: loop)
        let headTimeout = TimeAmount.nanoseconds(max(timeout.nanoseconds, 1_000_000))
        let readTimeout = self.readTimeout
        let bridge = AsyncUpstreamExchange(loop: pool.loop)
        return try await bridge.run { delegate in
            UpstreamExchange(
                pool: pool, origin: origin, head: head, body: body, headTimeout: headTimeout, readTimeout: readTimeout, delegate: delegate)
        }
    }
}
