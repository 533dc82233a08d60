import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The gateway as its own process (`switchyard serve`, built beside the tests), for what an in-process gateway
/// cannot do: die by `kill -9`.
enum GatewayProcess {
    /// The `switchyard` binary built beside the test runner.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchyard").path
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

    /// Starts `executable` (the gateway by default) with its output, both streams, in `log`.
    static func spawn(executable: String = binary, arguments: [String], environment: [String: String], log: String) throws -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else { throw GatewayProcessError(message: "posix_spawn: \(rc)") }
        return Child(pid: pid)
    }

    /// Starts the gateway and waits for the address it logs; returns the process and its base URL.
    static func launch(configPath: String, log: String, environment: [String: String] = [:]) async throws -> (Child, String) {
        try await launch(arguments: ["serve", "--config", configPath], log: log, environment: environment)
    }

    /// Starts `switchyard` with `arguments` and waits for the address it logs.
    static func launch(arguments: [String], log: String, environment: [String: String] = [:]) async throws -> (Child, String) {
        let child = try spawn(
            arguments: arguments, environment: ProcessInfo.processInfo.environment.merging(Harness.keys) { $1 }.merging(environment) { $1 }, log: log)
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
        throw GatewayProcessError(message: "the gateway did not start: \(text.suffix(2000))")
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

}

struct GatewayProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
