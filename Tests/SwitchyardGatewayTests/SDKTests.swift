import FakeUpstream
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The official Python SDKs against `switchyard serve --demo`, unchanged but for their base URL. They run when
/// the test script made its virtual environment (`.venv-sdk`, never committed: scripts/test installs the SDKs
/// there when python3 is present); without it they are skipped.
@Suite(.serialized) struct SDKTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let python = root.appendingPathComponent(".venv-sdk/bin/python").path
    static var available: Bool { FileManager.default.isExecutableFile(atPath: python) }

    /// Runs `script` (in Tests/SDK) against a demo gateway; returns its exit status and output.
    static func run(_ script: String) async throws -> (status: Int32, output: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-sdk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (gateway, url) = try await GatewayProcess.launch(
            arguments: ["serve", "--demo", "--listen", "127.0.0.1:0"], log: directory.appendingPathComponent("gateway.log").path)
        defer {
            kill(gateway.pid, SIGTERM)
            _ = gateway.wait()
        }
        let log = directory.appendingPathComponent("sdk.log").path
        let child = try GatewayProcess.spawn(
            executable: python, arguments: [root.appendingPathComponent("Tests/SDK/\(script)").path, url],
            environment: ProcessInfo.processInfo.environment, log: log)
        let status = try await onThread { () -> Int32 in
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0, errno == EINTR {}
            return (status >> 8) & 0xff
        }
        return (status, GatewayProcess.readText(log))
    }

    @Test(.enabled(if: available, "no .venv-sdk: run scripts/test with python3 present")) func theOpenAISDKWorksUnchanged() async throws {
        let (status, output) = try await Self.run("openai_sdk.py")
        #expect(status == 0, "\(output.suffix(3000))")
        #expect(output.contains("every check passed"))
    }

    @Test(.enabled(if: available, "no .venv-sdk: run scripts/test with python3 present")) func theAnthropicSDKWorksUnchanged() async throws {
        let (status, output) = try await Self.run("anthropic_sdk.py")
        #expect(status == 0, "\(output.suffix(3000))")
        #expect(output.contains("every check passed"))
    }
}
