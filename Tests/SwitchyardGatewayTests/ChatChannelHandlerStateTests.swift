import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import SwitchyardGateway

/// The channel handler's own bookkeeping, driven part by part: which requests it keeps for itself and which it
/// hands on to Hummingbird.
struct ChatChannelHandlerStateTests {
    static func head(_ extra: HTTPFields = [:]) -> HTTPRequest {
        var head = HTTPRequest(method: .post, scheme: nil, authority: "x", path: "/v1/chat/completions")
        head.headerFields[.contentType] = "application/json"
        head.headerFields.append(contentsOf: extra)
        return head
    }

    /// A request the handler passes on whole (one with a `Connection` header, as every stream) must not leave it
    /// passing: the next chat request on the connection is the handler's again, held until its body has come.
    @Test func aRequestPassedOnWholeLeavesTheNextOneToTheHandler() async throws {
        try await withHarness { h in
            let channel = EmbeddedChannel()
            let handler = ChatChannelHandler(route: h.gateway.chatRoute(), serverName: "switchyard", logger: Logger(label: "test"))
            try channel.pipeline.syncOperations.addHandler(handler)
            let passed = Self.head([.connection: "keep-alive"])
            try channel.writeInbound(HTTPRequestPart.head(passed))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: chat("passed on"))))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == .head(passed))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == .body(ByteBuffer(string: chat("passed on"))))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
            // Its answer ends: nothing of that request is in flight any more.
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))

            try channel.writeInbound(HTTPRequestPart.head(Self.head()))
            #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil, "the next chat request was passed on too")
            _ = try? channel.finish()
        }
    }
}
