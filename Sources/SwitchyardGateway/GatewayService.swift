import HTTPTypes
import Hummingbird
import HummingbirdCore
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
        // Idle and read timeouts are `ChatChannelHandler`'s, for every request on the connection.
        let http1 = HTTP1Channel.Configuration(idleTimeout: nil)
        let chat = chatRoute()
        let serverName = "switchyard"
        return Application(
            responder: OpenAIErrorResponder(inner: router(chat: chat).buildResponder()),
            server: HTTPServerBuilder { responder in
                GatewayHTTP1Channel(
                    base: HTTP1Channel(responder: responder, configuration: http1),
                    makeChatHandler: {
                        ChatChannelHandler(
                            route: chat, serverName: serverName, readTimeout: server.requestReadTimeout, idleTimeout: server.idleTimeout, logger: logger)
                    })
            },
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
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

/// Turns the router's own errors (no such path, a body it could not read) into OpenAI's error shape, so
/// every answer a client gets parses the same way. Hummingbird answers those with an empty body and no
/// content type, which none of the gateway's own answers lack; checking that costs two comparisons.
struct OpenAIErrorResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == GatewayRequestContext {
    let inner: Inner

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        let response = try await inner.respond(to: request, context: context)
        guard response.status.code >= 400, response.headers[.contentType] == nil else { return response }
        let message =
            switch response.status {
            case .notFound: "no such endpoint: \(request.method) \(request.uri.path)"
            case .contentTooLarge: "the request body is over the gateway's max_body_bytes"
            default: response.status.reasonPhrase
            }
        let type = response.status.code >= 500 ? "server_error" : "invalid_request_error"
        return GatewayError(status: response.status, message: message, type: type, code: response.status == .notFound ? "not_found" : response.status == .contentTooLarge ? "request_too_large" : nil)
            .response()
    }
}
