import ArgumentParser
import FakeUpstream
import Foundation

/// `fake-upstream`: the bundled fake provider, standalone.
@main
struct FakeUpstreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-upstream",
        abstract: "An OpenAI-compatible upstream that misbehaves on demand (change it at run time through /_control)."
    )

    @Option(name: .long, help: "Address to listen on.")
    var listen: String = "127.0.0.1:9001"

    @Option(name: .long, help: "A YAML or JSON behaviour script.")
    var script: String?

    @Option(name: .long, help: "Event loop threads (default: one per core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen must be HOST:PORT")
        }
        let host = String(listen[..<colon])
        var fakeScript = FakeScript()
        if let script {
            let text = try String(contentsOfFile: script, encoding: .utf8)
            fakeScript = try FakeScript.parse(text)
        }
        let server = try await FakeUpstreamServer.start(host: host, port: port, script: fakeScript, threads: threads)
        print("fake-upstream listening on http://\(server.host):\(server.port) (base_url \(server.baseURL))")
        print("control: POST /_control/behavior (YAML or JSON), POST /_control/reset, GET /_control/log")
        try await withTaskCancellationHandler {
            while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
        } onCancel: {}
    }
}
