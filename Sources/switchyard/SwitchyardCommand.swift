import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

@main
struct SwitchyardCommand: AsyncParsableCommand {
    /// Runs Swift concurrency on NIO's event loop threads: a request then stays on one thread from socket to
    /// handler to upstream client instead of hopping between NIO's threads and the cooperative pool.
    static func main() async {
        if let threads = ProcessInfo.processInfo.environment["SWITCHYARD_THREADS"].flatMap(Int.init), threads > 0 {
            NIOSingletons.groupLoopCountSuggestion = threads
        } else if let allowed = allowedCPUs() {
            // System.coreCount counts the machine's cores, not those `taskset` or a container's cpuset allow:
            // two loops on one allowed CPU only wake each other.
            NIOSingletons.groupLoopCountSuggestion = allowed
        }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        // swift-log stamps each line through tzset(), which re-reads /etc/localtime (a stat per log line,
        // so per request) unless TZ is set. Naming the same file keeps the local zone and drops the syscall.
        if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 0) }
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

    /// How many CPUs this process may run on (`Cpus_allowed` of /proc/self/status, its affinity mask), nil when
    /// it cannot be read.
    static func allowedCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        else { return nil }
        let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
        let count = mask.reduce(0) { $0 + (Int(String($1), radix: 16)?.nonzeroBitCount ?? 0) }
        return count > 0 ? count : nil
    }

    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-aware routing gateway for OpenAI-compatible LLM providers.",
        subcommands: [ServeCommand.self, CheckCommand.self, ExplainCommand.self]
    )
}
