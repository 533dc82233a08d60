import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SwitchyardGateway

/// The channel handler's own bookkeeping, driven part by part: which requests it keeps for itself and which it
/// hands on to Hummingbird.
struct ChatChannelHandlerStateTests {
    static func head(_ extra: [(String, String)] = []) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        head.headers.add(name: "Host", value: "x")
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(contentsOf: extra)
        return head
    }

    static func handler(_ h: Harness) -> ChatChannelHandler {
        ChatChannelHandler(
            route: h.gateway.chatRoute(), serverName: "switchyard", readTimeout: .seconds(30), idleTimeout: .seconds(60), logger: Logger(label: "test"))
    }

    /// A request the handler passes on whole (one with a `Connection` header) must not leave it
    /// passing: the next chat request on the connection is the handler's again, held until its body has come.
    @Test func aRequestPassedOnWholeLeavesTheNextOneToTheHandler() async throws {
        try await withHarness { h in
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(Self.handler(h))
            let passed = Self.head([("Connection", "keep-alive")])
            try channel.writeInbound(HTTPServerRequestPart.head(passed))
            try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: chat("passed on"))))
            try channel.writeInbound(HTTPServerRequestPart.end(nil))
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .head(passed))
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .body(ByteBuffer(string: chat("passed on"))))
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .end(nil))
            // Its answer ends: nothing of that request is in flight any more.
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
            try channel.writeOutbound(HTTPServerResponsePart.end(nil))

            try channel.writeInbound(HTTPServerRequestPart.head(Self.head()))
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil, "the next chat request was passed on too")
            _ = try? channel.finish()
        }
    }

    /// Once the server asks its connections to finish, a connection closes after the answer in flight, not before.
    @Test func aShutdownWaitsForTheAnswerInFlight() async throws {
        try await withHarness { h in
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(Self.handler(h))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            let passed = Self.head([("Connection", "keep-alive")])
            try channel.writeInbound(HTTPServerRequestPart.head(passed))
            try channel.writeInbound(HTTPServerRequestPart.end(nil))
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            #expect(channel.isActive, "closed with an answer in flight")
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
            try channel.writeOutbound(HTTPServerResponsePart.end(nil))
            #expect(!channel.isActive, "left open after the last answer")
            // The close's handler removal runs on the embedded loop; without it the handler and its timer stay.
            channel.embeddedEventLoop.run()
        }
    }
}
