import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A scriptable OpenAI-compatible upstream that misbehaves on demand: the project's test kit,
/// also used by `switchyard serve --demo` and `bench`.
public final class FakeUpstreamServer: Sendable {
    public let host: String
    public let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    let state: FakeUpstreamState

    /// `http://HOST:PORT/v1`: what a provider's `base_url` should be.
    public var baseURL: String { "http://\(host):\(port)/v1" }

    private init(host: String, port: Int, channel: any Channel, group: MultiThreadedEventLoopGroup, state: FakeUpstreamState) {
        self.host = host
        self.port = port
        self.channel = channel
        self.group = group
        self.state = state
    }

    /// Binds and starts serving; port 0 picks a free port (read it from `port`).
    public static func start(
        host: String = "127.0.0.1", port: Int = 0, script: FakeScript = FakeScript(), threads: Int = System.coreCount
    ) async throws -> FakeUpstreamServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(threads, 1))
        let state = FakeUpstreamState(script: script)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        let gate = FlushGate()
                        try channel.pipeline.syncOperations.addHandler(gate)
                        try channel.pipeline.syncOperations.addHandler(FakeHTTPHandler(state: state, gate: gate))
                    }
                }
                .bind(host: host, port: port).get()
            let bound = channel.localAddress?.port ?? port
            return FakeUpstreamServer(host: host, port: bound, channel: channel, group: group, state: state)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening, drops every connection and frees the threads.
    public func shutdown() async throws {
        try? await channel.close()
        try await group.shutdownGracefully()
    }

    /// Replaces the sections of the behaviour script present in `yaml` (YAML or JSON), as `POST /_control/behavior` does.
    public func updateBehavior(_ yaml: String) throws {
        try state.replaceScript(with: yaml)
    }

    /// Clears the log, counters, quotas and fault counts and restarts flapping, as `POST /_control/reset` does.
    public func reset() { state.reset() }

    /// The request log and counters, as `GET /_control/log` returns them.
    public func log() -> FakeLog { state.log() }

    public var script: FakeScript { state.script }
}
