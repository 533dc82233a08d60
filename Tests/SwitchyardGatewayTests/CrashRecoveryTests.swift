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
    /// The `switchyard` binary built beside the test runner.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchyard").path
    }

    @Test func anExhaustedKeyStaysOutAfterKillNineAndRestart() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "swift build builds switchyard beside the tests")
        let fake = try await FakeUpstreamServer.start(
            script: try FakeScript.parse(
                "keys: { \(Harness.key(2)): { fault: payment_required } }\nkey_labels:\n" + Harness.labels), threads: 1)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let port = try Self.freePort()
            let config = Harness.config.replacingOccurrences(of: "BASE", with: fake.baseURL)
                + "\nserver: { listen: 127.0.0.1:\(port) }\nstate: state.sqlite\n"
            let configPath = directory.appendingPathComponent("routes.yaml").path
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)
            let url = "http://127.0.0.1:\(port)"

            let first = try await Self.launch(configPath: configPath, log: directory.appendingPathComponent("first.log").path, url: url, client: client)
            for i in 0..<4 { _ = try await Self.post(client, url, #"{"model":"auto","messages":[{"role":"user","content":"crash \#(i)"}]}"#) }
            #expect(try await Self.keyState(client, url, "openrouter#2") == "removed")
            // The background writer runs once a second; then the process dies without any chance to flush.
            try await Task.sleep(for: .milliseconds(1500))
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)

            fake.reset()
            let second = try await Self.launch(configPath: configPath, log: directory.appendingPathComponent("second.log").path, url: url, client: client)
            defer {
                second.terminate()
                second.waitUntilExit()
            }
            #expect(try await Self.keyState(client, url, "openrouter#2") == "removed", "still out until its expiry")
            #expect(try await Self.keyState(client, url, "openrouter#1") == "healthy")
            for i in 0..<6 { _ = try await Self.post(client, url, #"{"model":"auto","messages":[{"role":"user","content":"again \#(i)"}]}"#) }
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

    static func launch(configPath: String, log: String, url: String, client: HTTPClient) async throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--config", configPath]
        process.environment = ProcessInfo.processInfo.environment.merging(Harness.keys) { $1 }
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        for _ in 0..<200 {
            var request = HTTPClientRequest(url: url + "/healthz")
            request.method = .GET
            if let response = try? await client.execute(request, timeout: .seconds(1)), response.status == .ok { return process }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw CrashTestError(message: "the gateway did not start; see \(log)")
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

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw CrashTestError(message: "no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

struct CrashTestError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
