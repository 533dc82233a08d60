import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore

/// Shuts the upstream client down when the service group stops; listed before the server so the
/// server drains first (ServiceLifecycle stops services in reverse order).
public struct UpstreamClientService: Service {
    public let client: UpstreamClient

    public init(client: UpstreamClient) {
        self.client = client
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

extension Gateway {
    /// The Hummingbird application for `host:port`; `onRunning` receives the bound port (0 picks one).
    public func application(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let server = store.snapshot.table.server
        let readTimeout = TimeAmount.nanoseconds(server.requestReadTimeout.nanoseconds)
        return Application(
            router: router(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [RequestReadTimeout(timeout: readTimeout)],
                    idleTimeout: .nanoseconds(server.idleTimeout.nanoseconds))),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchyard"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }
}

extension Gateway {
    /// Serves until the calling task is cancelled: for tests and for embedding the gateway in another process.
    public func serve(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(host: host, port: port, onRunning: onRunning).runService(gracefulShutdownSignals: [])
    }
}
