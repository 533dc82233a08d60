import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The least a proxy hop built on the gateway's stack can cost per request: a bare SwiftNIO proxy, NIOHTTP1 on
/// both sides, each client connection served on its event loop with an upstream keep-alive connection of the same
/// loop, the request's head and body written in one flush, no Swift concurrency on the path. None of Switchyard's
/// work happens here: no scan, plan, health, cache, metrics or log line. bench runs it beside the gateway, under
/// the same load, so the gateway's CPU per request reads as this floor plus the gateway's own work.
@main
struct StackFloorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stack-floor",
        abstract: "A bare SwiftNIO proxy hop: the CPU floor of the gateway's data path, for bench."
    )

    @Option(name: .long, help: "Port to listen on, on 127.0.0.1.")
    var port: Int

    @Option(name: .long, help: "The upstream's chat completions URL (http://host:port/path).")
    var upstream: String

    @Option(name: .long, help: "The environment variable holding the upstream key.")
    var keyEnv: String = "BENCH_KEY_1"

    func run() throws {
        // bench stops it with SIGTERM, from a thread that may block it: a spawned child inherits that mask.
        var terms = sigset_t()
        sigemptyset(&terms)
        sigaddset(&terms, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &terms, nil)
        signal(SIGTERM, SIG_DFL)
        guard let target = Upstream(url: upstream, key: ProcessInfo.processInfo.environment[keyEnv] ?? "") else {
            throw ValidationError("--upstream must be http://host:port/path")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                    try channel.pipeline.syncOperations.addHandler(FloorHandler(upstream: target))
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
        try server.closeFuture.wait()
    }
}

/// Where requests go, parsed once.
struct Upstream: Sendable {
    var host: String
    var port: Int
    var path: String
    var headers: HTTPHeaders

    init?(url: String, key: String) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(7)
        let authority = rest.prefix { $0 != "/" }
        let parts = authority.split(separator: ":")
        guard let host = parts.first, parts.count == 2, let port = Int(parts[1]) else { return nil }
        self.host = String(host)
        self.port = port
        path = String(rest.dropFirst(authority.count))
        headers = ["host": String(authority), "authorization": "Bearer \(key)", "content-type": "application/json"]
    }
}

/// One client connection: each request is forwarded on this connection's own upstream connection.
final class FloorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let upstream: Upstream
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var connection: (any Channel)?
    private var context: ChannelHandlerContext?

    init(upstream: Upstream) {
        self.upstream = upstream
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.close(promise: nil)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            if head.method == .GET {
                answer(context, status: .ok, body: ByteBuffer(string: "ok"))
            } else {
                forward(context, body)
            }
        }
    }

    private func forward(_ context: ChannelHandlerContext, _ body: ByteBuffer) {
        var headers = upstream.headers
        headers.add(name: "content-length", value: String(body.readableBytes))
        let request = HTTPRequestHead(version: .http1_1, method: .POST, uri: upstream.path, headers: headers)
        withConnection(context) { channel in
            channel.write(HTTPClientRequestPart.head(request), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
    }

    /// Runs `send` on the upstream connection, made on this loop the first time.
    private func withConnection(_ context: ChannelHandlerContext, _ send: @escaping (any Channel) -> Void) {
        if let connection {
            send(connection)
            return
        }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        ResponseReader { status, answer in
                            guard let context = handler.value.context else { return }
                            handler.value.answer(context, status: status, body: answer)
                        })
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    connection = channel
                    send(channel)
                case .failure:
                    answer(context, status: .badGateway, body: ByteBuffer(string: "upstream unreachable"))
                }
            }
    }

    private func answer(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: ByteBuffer) {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Collects one upstream answer at a time and hands it back whole.
final class ResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let done: (HTTPResponseStatus, ByteBuffer) -> Void
    private var status = HTTPResponseStatus.ok
    private var body = ByteBuffer()

    init(done: @escaping (HTTPResponseStatus, ByteBuffer) -> Void) {
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            done(status, body)
        }
    }
}
