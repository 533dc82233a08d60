import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The bare SwiftNIO proxy hop (`stack-floor`, built beside bench) as a child process: the throughput scenario
/// puts the same load through it, so the gateway's CPU per request reads as this floor plus the gateway's work.
final class StackFloor {
    let process: Process
    let url: String

    private init(process: Process, url: String) {
        self.process = process
        self.url = url
    }

    /// Starts it in front of `upstream` (a chat completions URL); nil, with a note, when it was not built.
    static func start(upstream: String) throws -> StackFloor? {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("stack-floor").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            warn("note: no stack-floor binary at \(binary); the stack's floor is not measured (swift build -c release builds it).")
            return nil
        }
        let port = try freePort()
        let process = Process()
        let command = CPUPinning.command(binary, ["--port", String(port), "--upstream", upstream])
        process.executableURL = URL(fileURLWithPath: command.executable)
        process.arguments = command.arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["BENCH_KEY_1": BenchEnvironment.keys[0]]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let floor = StackFloor(process: process, url: "http://127.0.0.1:\(port)")
        for _ in 0..<100 {
            if (try? HTTP.get(floor.url + "/healthz").status) == 200 { return floor }
            usleep(100_000)
        }
        floor.stop()
        throw BenchError("stack-floor did not start")
    }

    var cpuMicros: UInt64? { processCPUMicros(process.processIdentifier) }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// A process's CPU time in microseconds (utime + stime from /proc).
func processCPUMicros(_ pid: Int32) -> UInt64? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
    let ticks = UInt64(sysconf(Int32(_SC_CLK_TCK)))
    return (user + system) * 1_000_000 / max(ticks, 1)
}
