import Foundation
import Locking
import Testing

/// A gateway replica run as its own `switchyard serve` process (the one built beside this test bundle), for what
/// an in-process replica cannot do: die by `kill -9`.
final class ReplicaProcess {
    let process = Process()
    let port: Int
    private let configPath: String

    /// Starts `switchyard serve` on a free loopback port with `config` and `environment`, and waits until it listens.
    init(config: String, environment: [String: String]) async throws {
        configPath = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-replica-\(UUID().uuidString).yaml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let executable = try #require(Self.executable(), "switchyard is built beside the test bundle by `swift build --build-tests`")
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--config", configPath, "--listen", "127.0.0.1:0"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let seen = Locked("")
        output.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            seen.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
        }
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // `serve` prints a curl line with its URL once it listens.
        let deadline = Date().addingTimeInterval(20 * timingScale)
        var found: Int?
        while found == nil, Date() < deadline, process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
            found = Self.port(in: seen.withLock { $0 })
        }
        output.fileHandleForReading.readabilityHandler = nil
        guard let found else {
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
            throw ReplicaProcessError(output: seen.withLock { $0 })
        }
        port = found
    }

    /// Ends the process at once, with no shutdown of any kind: no last write, no goodbye to the store.
    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { kill() }
        try? FileManager.default.removeItem(atPath: configPath)
    }

    static func executable() -> String? {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let path = directory.appendingPathComponent("switchyard").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    static func port(in output: String) -> Int? {
        guard let range = output.range(of: "http://127.0.0.1:") else { return nil }
        let digits = output[range.upperBound...].prefix { $0.isNumber }
        guard output[range.upperBound...].dropFirst(digits.count).first == "/" else { return nil }
        return Int(digits)
    }
}

struct ReplicaProcessError: Error, CustomStringConvertible {
    var output: String
    var description: String { "switchyard serve did not start listening; it printed: \(output.prefix(800))" }
}
