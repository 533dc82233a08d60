import AsyncHTTPClient
import FakeUpstream
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The gateway as its own process, killed with SIGKILL: what the state file held survives.
@Suite struct CrashRecoveryTests {
    @Test func anExhaustedKeyStaysOutAfterKillNineAndRestart() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: GatewayProcess.binary), "swift build builds switchyard beside the tests")
        let fake = try await FakeUpstreamServer.start(
            script: try FakeScript.parse(
                "keys: { \(Harness.key(2)): { fault: payment_required } }\nkey_labels:\n" + Harness.labels), threads: 1)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            // Port 0: the gateway binds a free port and logs it, so no other test can take it in between.
            let config = Harness.config.replacingOccurrences(of: "BASE", with: fake.baseURL)
                + "\nserver: { listen: 127.0.0.1:0 }\nstate: state.sqlite\n"
            let configPath = directory.appendingPathComponent("routes.yaml").path
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)

            let (first, url) = try await GatewayProcess.launch(configPath: configPath, log: directory.appendingPathComponent("first.log").path)
            for i in 0..<4 { _ = try await Self.post(client, url, #"{"model":"auto","messages":[{"role":"user","content":"crash \#(i)"}]}"#) }
            #expect(try await Self.keyState(client, url, "openrouter#2") == "removed")
            // The background writer runs once a second; then the process dies without any chance to flush.
            try await Task.sleep(for: .milliseconds(1500))
            kill(first.pid, SIGKILL)
            #expect(first.wait() == SIGKILL, "killed, not exited")

            fake.reset()
            let (second, url2) = try await GatewayProcess.launch(configPath: configPath, log: directory.appendingPathComponent("second.log").path)
            defer {
                kill(second.pid, SIGTERM)
                _ = second.wait()
            }
            #expect(try await Self.keyState(client, url2, "openrouter#2") == "removed", "still out until its expiry")
            #expect(try await Self.keyState(client, url2, "openrouter#1") == "healthy")
            for i in 0..<6 { _ = try await Self.post(client, url2, #"{"model":"auto","messages":[{"role":"user","content":"again \#(i)"}]}"#) }
            let keys = fake.log().requests.map(\.key)
            #expect(keys.count == 6)
            #expect(!keys.contains("openrouter#2"), "\(keys)")
            let log = try String(contentsOfFile: directory.appendingPathComponent("second.log").path, encoding: .utf8)
            #expect(log.contains("openrouter#2"), "the restored state is logged")
            #expect(!log.contains(Harness.key(2)), "never key material")
        } catch {
            try? await client.shutdown()
            try? await fake.shutdown()
            throw error
        }
        try? await client.shutdown()
        try? await fake.shutdown()
    }

    static func post(_ client: HTTPClient, _ url: String, _ body: String) async throws -> Int {
        var request = HTTPClientRequest(url: url + "/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    static func keyState(_ client: HTTPClient, _ url: String, _ label: String) async throws -> String? {
        let response = try await client.execute(HTTPClientRequest(url: url + "/admin/stats"), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 1 << 20)
        struct Stats: Decodable {
            struct Key: Decodable {
                var label: String
                var state: String
            }
            var keys: [Key]
        }
        return try JSONDecoder().decode(Stats.self, from: Data(body.readableBytesView)).keys.first { $0.label == label }?.state
    }
}

