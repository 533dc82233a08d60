import Foundation
import Logging
import ServiceLifecycle
import Locking
import SwitchyardCore
import UnixSignals

/// Keeps the routing table in step with routes.yaml and its env file: a valid edit is swapped in atomically
/// (requests in flight finish on the table they started with; key and model health carries over), an invalid
/// one leaves the old table serving and is reported with line:column until fixed.
public final class ConfigReloader: Service, Sendable {
    public struct Status: Sendable {
        public var file: String
        public var loadedAt: Timestamp
        public var reloads: Int
        public var failures: Int
        /// The problems of the last attempt, empty when it applied.
        public var lastError: [ConfigProblem]
    }

    let path: String
    let environment: @Sendable () -> [String: String]
    let store: SnapshotStore
    let cache: ResponseCache
    let clock: any WallClock
    let logger: Logger
    let pollEvery: Duration
    private let state: Locked<(status: Status, stamps: [String: Double])>

    public init(
        path: String, environment: @escaping @Sendable () -> [String: String] = { ProcessInfo.processInfo.environment },
        store: SnapshotStore, cache: ResponseCache, clock: any WallClock = SystemClock(), logger: Logger, pollEvery: Duration = .seconds(1)
    ) {
        self.path = path
        self.environment = environment
        self.store = store
        self.cache = cache
        self.clock = clock
        self.logger = logger
        self.pollEvery = pollEvery
        let status = Status(file: path, loadedAt: clock.now(), reloads: 0, failures: 0, lastError: [])
        state = Locked((status, [:]))
        state.withLock { $0.stamps = Self.stamps(self.watchedFiles()) }
    }

    public var status: Status { state.withLock { $0.status } }

    /// Loads the file again; returns the problems (empty when the new table applied).
    @discardableResult
    public func reload(reason: String) -> [ConfigProblem] {
        let files = watchedFiles()
        let stamps = Self.stamps(files)
        do {
            let table = try ConfigLoader(environment: environment()).load(path: path)
            let now = clock.now()
            store.replace(with: table, now: now)
            cache.update(limits: .init(ttl: table.cache.ttl, maxEntries: table.cache.maxEntries, maxBytes: table.cache.maxBytes), at: now)
            state.withLock {
                $0.status.loadedAt = now
                $0.status.reloads += 1
                $0.status.lastError = []
                $0.stamps = stamps
            }
            logger.notice("routes reloaded (\(reason)): \(table.routes.count) routes, \(table.models.count) models, \(table.keys.count) keys")
            for warning in table.warnings { logger.warning("\(warning)") }
            return []
        } catch {
            state.withLock {
                $0.status.failures += 1
                $0.status.lastError = error.problems
                $0.stamps = stamps
            }
            logger.error("routes not reloaded (\(reason)); the previous table keeps serving:\n\(error.description)")
            return error.problems
        }
    }

    /// Reloads when routes.yaml or its env file changed since the last look.
    public func reloadIfChanged() {
        let files = watchedFiles()
        let stamps = Self.stamps(files)
        let changed = state.withLock { $0.stamps != stamps }
        if changed { reload(reason: "file changed") }
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) { self.reload(reason: "SIGHUP") }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.pollEvery)
                    self.reloadIfChanged()
                }
            }
            try await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func watchedFiles() -> [String] {
        var files = [path]
        if let envFile = store.snapshot.table.envFile {
            files.append(ConfigLoader.envFilePath(envFile, configPath: path))
        }
        return files
    }

    /// Modification time and size per file; a missing file counts as its own state.
    private static func stamps(_ files: [String]) -> [String: Double] {
        var out: [String: Double] = [:]
        for file in files {
            var st = stat()
            if stat(file, &st) == 0 {
                out[file] = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 + Double(st.st_size) * 1e-12
            } else {
                out[file] = -1
            }
        }
        return out
    }
}
