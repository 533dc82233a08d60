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

    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-aware routing gateway for OpenAI-compatible LLM providers.",
        subcommands: [ServeCommand.self, CheckCommand.self, ExplainCommand.self]
    )
}
