import AsyncHTTPClient
import NIOCore
import NIOPosix
import Testing
@testable import SwitchyardGateway

struct UpstreamClientTests {
    /// Each event loop has its own client, so an upstream call runs where the client's connection is served.
    @Test func upstreamCallsStayOnTheRequestsEventLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = UpstreamClient(group: group)
        let loops = Array(group.makeIterator())
        #expect(client.client(on: loops[0]) === client.client(on: loops[0]))
        #expect(client.client(on: loops[0]) !== client.client(on: loops[1]))
        #expect(client.client(on: loops[1]).eventLoopGroup === loops[1])
        try await client.shutdown()
        try await group.shutdownGracefully()
    }
}
