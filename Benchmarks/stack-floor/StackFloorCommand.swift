import ArgumentParser
import Foundation
import AsyncHTTPClient
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardGateway

/// The least a gateway built on this project's stack can cost per request: Hummingbird's router in front of
/// the gateway's own `UpstreamClient` (one shared AsyncHTTPClient, configured the same), forwarding a chat
/// request's bytes as they are and returning the answer. None of Switchyard's work happens here: no scan,
/// plan, health, cache, metrics or log line. bench runs it beside the gateway, under the same load, so the
/// gateway's CPU time per request reads against what its server and client alone cost on the machine.
@main
struct StackFloorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stack-floor",
        abstract: "A bare Hummingbird + AsyncHTTPClient proxy: the CPU floor of the gateway's stack, for bench."
    )

    @Option(name: .long, help: "Port to listen on, on 127.0.0.1.")
    var port: Int

    @Option(name: .long, help: "The upstream's chat completions URL.")
    var upstream: String

    @Option(name: .long, help: "The environment variable holding the upstream key.")
    var keyEnv: String = "BENCH_KEY_1"

    /// As the gateway does: Swift concurrency on NIO's event loops, so neither pays for thread hops the other avoids.
    static func main() async {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    func run() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let authorization = "Bearer " + (ProcessInfo.processInfo.environment[keyEnv] ?? "")
        let url = upstream
        let router = Router()
        router.get("/healthz") { _, _ in "ok" }
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 << 20)
            var forwarded = HTTPClientRequest(url: url)
            forwarded.method = .POST
            forwarded.headers.add(name: "authorization", value: authorization)
            forwarded.headers.add(name: "content-type", value: "application/json")
            forwarded.body = .bytes(body)
            let answer = try await client.execute(forwarded, timeout: .seconds(30))
            let bytes = try await answer.body.collect(upTo: 32 << 20)
            return Response(
                status: .init(code: Int(answer.status.code)), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: bytes))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
        try await client.shutdown()
    }
}
