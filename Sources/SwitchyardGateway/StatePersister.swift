import Logging
import ServiceLifecycle
import Locking
import SwitchyardCore

/// Keeps health and usage in the state file: loads them before the gateway serves, writes what changed
/// once a second off the request path, and once more on shutdown.
///
/// Every database call goes through one serial queue, so a write and a usage query never interleave.
public final class StatePersister: Service, Sendable {
    let database: StateStore
    let store: SnapshotStore
    let usage: UsageLedger
    let clock: any WallClock
    let logger: Logger
    let every: Duration
    /// Daily totals are kept this many days.
    static let keepDays = 30
    private let tail = Locked<Task<Void, Never>?>(nil)
    /// When daily totals older than `keepDays` were last dropped (at open, then hourly).
    private let lastPrune: Locked<Timestamp>

    public var path: String { database.path }

    private init(database: StateStore, store: SnapshotStore, usage: UsageLedger, clock: any WallClock, logger: Logger, every: Duration) {
        self.database = database
        self.store = store
        self.usage = usage
        self.clock = clock
        self.logger = logger
        self.every = every
        lastPrune = Locked(clock.now())
    }

    /// Opens (or creates) the state file and restores what it holds into the current health.
    public static func open(
        path: String, store: SnapshotStore, usage: UsageLedger, clock: any WallClock, logger: Logger, activity: GatewayActivity,
        every: Duration = .seconds(1)
    ) async throws -> StatePersister {
        let database = try await StateStore.open(path: path, logger: logger)
        let persister = StatePersister(database: database, store: store, usage: usage, clock: clock, logger: logger, every: every)
        let saved = try await database.load()
        let now = clock.now()
        let events = store.snapshot.health.restore(saved, at: now)
        activity.report(events, logger: logger)
        try await database.prune(before: UsageLedger.firstDay(of: keepDays, at: now))
        logger.notice("state: \(path) (\(events.count) saved key or account states still in force)")
        return persister
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: self.every) } catch { break }
                await self.flush()
            }
        }
        await flush()
        await serial { await self.database.close() }
    }

    /// Writes the current health and the usage counted since the last write, in one transaction.
    public func flush() async {
        await serial {
            let now = self.clock.now()
            let rows = self.usage.drain()
            let state = self.store.snapshot.health.savedState(at: now)
            do {
                try await self.database.write(state, usage: rows, at: now)
            } catch {
                self.usage.restore(rows)
                self.logger.error("state: cannot write \(self.database.path): \(error)")
                return
            }
            let due = self.lastPrune.withLock { last in
                guard now - last >= .seconds(3600) else { return false }
                last = now
                return true
            }
            guard due else { return }
            do {
                try await self.database.prune(before: UsageLedger.firstDay(of: Self.keepDays, at: now))
            } catch {
                self.logger.warning("state: cannot drop old daily totals from \(self.database.path): \(error)")
            }
        }
    }

    /// Daily totals per key and model for the last `days` UTC days, including what is not yet written.
    public func usage(days: Int) async throws -> [UsageRow] {
        await flush()
        let first = UsageLedger.firstDay(of: days, at: clock.now())
        return try await serial { try await self.database.usage(since: first) }
    }

    /// Runs `body` after every earlier call has finished.
    private func serial<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task: Task<T, any Error> = tail.withLock { last in
            let previous = last
            let next = Task {
                await previous?.value
                return try await body()
            }
            last = Task { _ = try? await next.value }
            return next
        }
        return try await task.value
    }

    private func serial(_ body: @escaping @Sendable () async -> Void) async {
        _ = try? await serial { () async throws -> Bool in
            await body()
            return true
        }
    }
}
