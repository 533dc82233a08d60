import FakeUpstream
import Foundation
import Locking
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardCore
import Testing

@testable import SwitchyardGateway

/// The gateway's own HTTP/1.1 client: keep-alive pools per event loop, bounded waits, and a connection that is
/// reused only when its last answer ended cleanly.
@Suite struct UpstreamClientTests {
    static let body = ByteBuffer(string: #"{"model":"meta-llama/llama-3.1-8b-instruct:free","messages":[{"role":"user","content":"hi"}]}"#)

    func send(
        _ client: UpstreamClient, _ target: UpstreamTarget, stream: Bool = false, key: Int = 1, timeout: Duration = .seconds(5), on loop: any EventLoop
    ) async throws -> UpstreamResponse {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.origin.hostHeader)
        headers.add(name: "authorization", value: "Bearer \(Harness.key(key))")
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(Self.body.readableBytes))
        let body = stream ? ByteBuffer(string: String(buffer: Self.body).replacingOccurrences(of: "}]}", with: "}],\"stream\":true}")) : Self.body
        headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: headers)
        return try await client.execute(target.origin, head: head, body: body, timeout: timeout, on: loop)
    }

    /// Runs `body` with a client on a one-thread event loop group of its own, the fake upstream's chat target
    /// (`script` with the harness's key labels added) and the group's loop; shuts all three down afterwards.
    func withFakeUpstream(
        _ script: String = "", idleTimeout: Duration = .seconds(60),
        _ body: (UpstreamClient, UpstreamTarget, any EventLoop) async throws -> Void
    ) async throws {
        let fake = try await FakeUpstreamServer.start(script: try FakeScript.parse(script + "key_labels:\n" + Harness.labels), threads: 1)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(idleTimeout: idleTimeout, group: group)
        func shutdown() async throws {
            try await client.shutdown()
            try await fake.shutdown()
            try await group.shutdownGracefully()
        }
        do {
            let target = try #require(UpstreamTarget(url: fake.baseURL)?.appending("/chat/completions"))
            try await body(client, target, group.next())
        } catch {
            try? await shutdown()
            throw error
        }
        try await shutdown()
    }

    @Test func answersReuseOneConnectionPerLoop() async throws {
        try await withFakeUpstream { client, target, loop in
            for _ in 0..<5 {
                let response = try await send(client, target, on: loop)
                #expect(response.status == .ok)
                let body = try await response.body.collect(upTo: 1 << 20)
                #expect(String(buffer: body).contains("chat.completion"))
            }
            let pool = client.pool(for: loop)
            let (open, idle) = try await loop.submit { (pool.openCount(target.origin), pool.idleCount(target.origin)) }.get()
            #expect(open == 1 && idle == 1, "one connection, back in the pool after each answer")
        }
    }

    /// A stream nobody reads is not read ahead without bound: the upstream connection's reads stay held while the
    /// reader is away (the stream, about 12 MB, cannot have been read whole), and once the reader comes back
    /// every event arrives, in order, to the end.
    @Test func aStreamNotBeingReadHoldsTheUpstreamsReads() async throws {
        try await withFakeUpstream("default: { answer_tokens: 100000 }\n") { client, target, loop in
            let pool = client.pool(for: loop)
            let response = try await send(client, target, stream: true, on: loop)
            let events = UpstreamEvents(
                response: response, firstTokenTimeout: .seconds(30), idleTimeout: .seconds(30), deadlineMono: Monotonic.now() + 60_000_000_000, channel: nil)
            // Long enough for a reader running ahead to take the whole stream (well under a second).
            try await Task.sleep(for: .milliseconds(1500))
            let (held, idle) = try await loop.submit { (pool.heldCount(target.origin), pool.idleCount(target.origin)) }.get()
            #expect(held == 1 && idle == 0, "the stream was read ahead of its reader (held \(held), idle \(idle))")
            var count = 0
            var last: [UInt8] = []
            while let event = try await events.next() {
                count += 1
                last = event
            }
            #expect(count > 100_000)
            #expect(String(decoding: last, as: UTF8.self) == "[DONE]")
            events.cancel()
        }
    }

    /// An idle connection closes once it has waited unused for the idle timeout, counted from its last use.
    /// The check after the second use leaves 600 ms for the sleep to run late on a loaded machine (a full suite
    /// once stretched a 250 ms sleep past a 400 ms timeout).
    @Test func idleConnectionsCloseAfterTheIdleTimeoutFromTheirLastUse() async throws {
        try await withFakeUpstream(idleTimeout: .seconds(1)) { client, target, loop in
            let pool = client.pool(for: loop)
            func openCount() async throws -> Int { try await loop.submit { pool.openCount(target.origin) }.get() }
            _ = try await send(client, target, on: loop).body.collect(upTo: 1 << 20)
            try await Task.sleep(for: .milliseconds(700))
            _ = try await send(client, target, on: loop).body.collect(upTo: 1 << 20)
            try await Task.sleep(for: .milliseconds(400))
            // 1.1 s after its first use, 400 ms after its last: still open.
            #expect(try await openCount() == 1)
            let started = Date()
            while try await openCount() > 0, Date().timeIntervalSince(started) < 3 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try await openCount() == 0, "an idle connection was never closed")
        }
    }

    @Test func aHangingUpstreamEndsAtTheHeadTimeoutAndItsConnectionIsNotReused() async throws {
        try await withFakeUpstream("default: { fault: hang }\n") { client, target, loop in
            let started = Date()
            await #expect(throws: UpstreamError.headTimeout) { _ = try await send(client, target, timeout: .milliseconds(300), on: loop) }
            #expect(Date().timeIntervalSince(started) < 3 * timingScale)
            let pool = client.pool(for: loop)
            let idle = try await loop.submit { pool.idleCount(target.origin) }.get()
            #expect(idle == 0)
        }
    }

    /// The connection's one timer, set for a long bound by an earlier exchange, is moved for a shorter one.
    @Test func aReusedConnectionTimesEachExchangeByItsOwnBound() async throws {
        try await withFakeUpstream("keys:\n  \(Harness.key(2)): { fault: hang }\n") { client, target, loop in
            _ = try await send(client, target, timeout: .seconds(20), on: loop).body.collect(upTo: 1 << 20)
            let pool = client.pool(for: loop)
            #expect(try await loop.submit { pool.idleCount(target.origin) }.get() == 1)
            let started = Date()
            await #expect(throws: UpstreamError.headTimeout) {
                _ = try await send(client, target, key: 2, timeout: .milliseconds(300), on: loop)
            }
            #expect(Date().timeIntervalSince(started) < 3 * timingScale, "the second exchange waited for the first one's bound")
            #expect(try await loop.submit { pool.openCount(target.origin) }.get() == 0, "the timed-out connection is closed, not reused")
        }
    }

    @Test func aStreamIsReadAsItArrivesAndCancellingTheReaderClosesTheConnection() async throws {
        try await withFakeUpstream("default: { token_interval: 20ms, answer_tokens: 200 }\n") { client, target, loop in
            let received = Locked(0)
            let reader = Task {
                let response = try await send(client, target, stream: true, on: loop)
                for try await _ in response.body { received.withLock { $0 += 1 } }
            }
            // Given up once parts have come, not after a fixed time: on a loaded machine the reader may not have
            // sent its request by then, and a connection that never carried it is rightly kept.
            #expect(try await eventually(5) { received.withLock { $0 } >= 2 }, "the stream began")
            reader.cancel()
            _ = try? await reader.value
            let pool = client.pool(for: loop)
            let gone = try await eventually(2) { try await loop.submit { pool.openCount(target.origin) }.get() == 0 }
            #expect(gone, "a stream given up mid-way is never put back in the pool")
        }
    }

    @Test func aReusedConnectionClosedBeforeAnyByteIsRetriedOnceOnAFreshOne() async throws {
        // The second request on every connection is met by a close: what an upstream's idle timeout looks like.
        let server = try await ClosingServer.start(answersPerConnection: 1)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)
        let target = try #require(UpstreamTarget(url: "http://127.0.0.1:\(server.port)/v1/chat/completions"))
        let loop = group.next()
        for _ in 0..<3 {
            let response = try await send(client, target, on: loop)
            #expect(String(buffer: try await response.body.collect(upTo: 1024)) == "ok")
        }
        #expect(server.connections == 3, "each reused connection that closed was replaced by one fresh connection")
        try await client.shutdown()
        try await server.stop()
        try await group.shutdownGracefully()
    }

    @Test func targetsParseTheirOriginAndPath() {
        let t = UpstreamTarget(url: "https://api.groq.com/openai/v1/")
        #expect(t?.origin == UpstreamOrigin(tls: true, host: "api.groq.com", port: 443))
        #expect(t?.appending("/chat/completions").path == "/openai/v1/chat/completions")
        #expect(t?.origin.hostHeader == "api.groq.com")
        let local = UpstreamTarget(url: "http://127.0.0.1:9001")
        #expect(local?.origin.hostHeader == "127.0.0.1:9001" && local?.path == "/" && local?.origin.hostIsAddress == true)
        #expect(UpstreamTarget(url: "http://[::1]:8080/v1")?.origin == UpstreamOrigin(tls: false, host: "::1", port: 8080))
        #expect(UpstreamTarget(url: "ftp://example.com") == nil)
        #expect(UpstreamTarget(url: "http://user:pw@example.com") == nil)
        #expect(UpstreamTarget(url: "http://example.com:99999") == nil)
    }
}

/// A bare HTTP/1.1 server that answers `answersPerConnection` requests on each connection with `ok` (keep-alive)
/// and closes the connection when the next request arrives, without a byte of answer.
final class ClosingServer: Sendable {
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    private let opened: Locked<Int>
    var port: Int { channel.localAddress?.port ?? 0 }
    /// Connections accepted so far.
    var connections: Int { opened.withLock { $0 } }

    private init(channel: any Channel, group: MultiThreadedEventLoopGroup, opened: Locked<Int>) {
        self.channel = channel
        self.group = group
        self.opened = opened
    }

    static func start(answersPerConnection: Int) async throws -> ClosingServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let opened = Locked(0)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                opened.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    try channel.pipeline.syncOperations.addHandler(Answerer(answers: answersPerConnection))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ClosingServer(channel: channel, group: group, opened: opened)
    }

    func stop() async throws {
        try await channel.close()
        try await group.shutdownGracefully()
    }

    final class Answerer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var answered = 0
        private let answers: Int

        init(answers: Int) { self.answers = answers }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            guard answered < answers else {
                context.close(promise: nil)
                return
            }
            answered += 1
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "content-length", value: "2")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
