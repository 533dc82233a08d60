import Foundation
import Locking
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

@testable import SwitchyardGateway

/// https upstreams: the upstream's certificate is checked against the trust roots and the host name, and the host
/// name goes out as SNI. The upstream is a TLS server on 127.0.0.1 with a throwaway certificate for `localhost`,
/// made by openssl for each run (the tests skip themselves without openssl).
@Suite struct UpstreamTLSTests {
    @Test(.enabled(if: TLSAnswerServer.openssl != nil, "needs openssl to make a certificate"))
    func aTrustedCertificateIsAcceptedAndTheHostNameIsSentAsSNI() async throws {
        let (certificate, key) = try TLSAnswerServer.makeCertificate()
        let server = try await TLSAnswerServer.start(certificate: certificate, key: key)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([certificate])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group, tls: tls)
        let response = try await Self.send(client, port: server.port, on: group.next())
        #expect(response.status == .ok)
        #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == TLSAnswerServer.answer)
        #expect(server.serverNames == ["localhost"])
        try await client.shutdown()
        try await group.shutdownGracefully()
        try await server.stop()
    }

    @Test(.enabled(if: TLSAnswerServer.openssl != nil, "needs openssl to make a certificate"))
    func aCertificateTheTrustRootsDoNotVouchForIsRefused() async throws {
        let (certificate, key) = try TLSAnswerServer.makeCertificate()
        let server = try await TLSAnswerServer.start(certificate: certificate, key: key)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(group: group)  // the system's trust roots only
        await #expect(throws: UpstreamError.self) { _ = try await Self.send(client, port: server.port, on: group.next()) }
        #expect(server.answered == 0, "no request is sent over an unverified connection")
        try await client.shutdown()
        try await group.shutdownGracefully()
        try await server.stop()
    }

    static func send(_ client: UpstreamClient, port: Int, on loop: any EventLoop) async throws -> UpstreamResponse {
        let target = try #require(UpstreamTarget(url: "https://localhost:\(port)/v1")?.appending("/chat/completions"))
        #expect(target.origin.tls)
        let body = ByteBuffer(string: #"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.origin.hostHeader)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: headers)
        return try await client.execute(target.origin, head: head, body: body, timeout: .seconds(5), on: loop)
    }
}

/// A TLS server answering every request with one fixed body, recording the SNI names of the handshakes it saw.
final class TLSAnswerServer: Sendable {
    static let answer = #"{"object":"chat.completion","choices":[]}"#
    static let openssl = ["/usr/bin/openssl", "/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let names: Locked<[String?]>
    private let answers: Locked<Int>

    var port: Int { channel.localAddress?.port ?? 0 }
    var serverNames: [String?] { names.withLock { $0 } }
    var answered: Int { answers.withLock { $0 } }

    private init(channel: any Channel, group: MultiThreadedEventLoopGroup, names: Locked<[String?]>, answers: Locked<Int>) {
        self.channel = channel
        self.group = group
        self.names = names
        self.answers = answers
    }

    /// A self-signed certificate for `localhost` (valid two days) and its key.
    static func makeCertificate() throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (certPath, keyPath) = (folder.appendingPathComponent("cert.pem").path, folder.appendingPathComponent("key.pem").path)
        // posix_spawn, not Foundation's Process (see GatewayProcess.Child).
        let openssl = try GatewayProcess.spawn(
            executable: try #require(openssl),
            arguments: [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost", "-keyout", keyPath, "-out", certPath,
            ],
            environment: [:], log: folder.appendingPathComponent("openssl.log").path)
        _ = openssl.wait()
        try #require(FileManager.default.fileExists(atPath: certPath), "openssl could not make a certificate")
        return (try NIOSSLCertificate(file: certPath, format: .pem), try NIOSSLPrivateKey(file: keyPath, format: .pem))
    }

    static func start(certificate: NIOSSLCertificate, key: NIOSSLPrivateKey) async throws -> TLSAnswerServer {
        let names = Locked<[String?]>([])
        let answers = Locked(0)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
        configuration.sslContextCallback = { values, promise in
            names.withLock { $0.append(values.serverHostname) }
            promise.succeed(.noChanges)
        }
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FixedAnswer(count: answers))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TLSAnswerServer(channel: channel, group: group, names: names, answers: answers)
    }

    func stop() async throws {
        try await channel.close()
        try await group.shutdownGracefully()
    }

    private final class FixedAnswer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let count: Locked<Int>

        init(count: Locked<Int>) { self.count = count }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            count.withLock { $0 += 1 }
            let body = ByteBuffer(string: TLSAnswerServer.answer)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(body.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
