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
            // Port 0: the gateway binds a free port and logs it, so no other test can take it in between.
            let config = Harness.config.replacingOccurrences(of: "BASE", with: fake.baseURL)
                + "\nserver: { listen: 127.0.0.1:0 }\nstate: state.sqlite\n"
            let configPath = directory.appendingPathComponent("routes.yaml").path
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)

            let (first, url) = try await Self.launch(configPath: configPath, log: directory.appendingPathComponent("first.log").path, client: client)
            for i in 0..<4 { _ = try await Self.post(client, url, #"{"model":"auto","messages":[{"role":"user","content":"crash \#(i)"}]}"#) }
            #expect(try await Self.keyState(client, url, "openrouter#2") == "removed")
            // The background writer runs once a second; then the process dies without any chance to flush.
            try await Task.sleep(for: .milliseconds(1500))
            kill(first.pid, SIGKILL)
            #expect(first.wait() == SIGKILL, "killed, not exited")

            fake.reset()
            let (second, url2) = try await Self.launch(configPath: configPath, log: directory.appendingPathComponent("second.log").path, client: client)
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

    /// A child process started with posix_spawn. (Foundation's Process scans /proc/self/fd on start and, with
    /// thousands of descriptors open by other tests, reads past its buffer under AddressSanitizer.)
    struct Child {
        var pid: pid_t

        var isRunning: Bool { kill(pid, 0) == 0 && !hasExited }

        private var hasExited: Bool {
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == pid
        }

        /// Waits for the child; returns the signal that ended it, or 0 when it exited.
        func wait() -> Int32 {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            return status & 0x7f
        }
    }

    static func spawn(arguments: [String], environment: [String: String], log: String) throws -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, nil, argv, envp)
        guard rc == 0 else { throw CrashTestError(message: "posix_spawn: \(rc)") }
        return Child(pid: pid)
    }

    /// Starts the gateway and waits for the address it logs; returns the process and its base URL.
    static func launch(configPath: String, log: String, client: HTTPClient) async throws -> (Child, String) {
        let child = try spawn(
            arguments: ["serve", "--config", configPath], environment: ProcessInfo.processInfo.environment.merging(Harness.keys) { $1 }, log: log)
        let marker = "switchyard listening on "
        for _ in 0..<600 {
            let text = readText(log)
            if let range = text.range(of: marker) {
                let url = String(text[range.upperBound...].prefix { !$0.isWhitespace })
                return (child, url)
            }
            guard child.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(child.pid, SIGKILL)
        _ = child.wait()
        let text = readText(log)
        throw CrashTestError(message: "the gateway did not start: \(text.suffix(2000))")
    }

    /// A file that another process is writing, read with plain POSIX calls.
    static func readText(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
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

struct CrashTestError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
