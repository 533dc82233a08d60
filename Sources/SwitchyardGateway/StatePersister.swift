import Logging
import ServiceLifecycle
import Locking
import SwitchyardCore

/// Where `StatePersister` keeps health and usage: one instance's SQLite file, or PostgreSQL shared by replicas.
protocol StateDatabase: Sendable {
    /// Where it is, for logs and stats: a file path, or the URL with its password masked.
    var location: String { get }
    func load() async throws -> SavedState
    /// Saves this process's health and adds the usage counted since the last write, in one transaction.
    func write(_ state: SavedState, usage: [UsageRow], at now: Timestamp) async throws
    /// Daily totals from `firstDay` (`YYYY-MM-DD`) on, newest first.
    func usage(since firstDay: String) async throws -> [UsageRow]
    func prune(before firstKept: String) async throws
    func close() async
}

/// Keeps health and usage in the state store: loads them before the gateway serves, writes what changed
/// once a second off the request path, and once more on shutdown. A write that fails keeps its usage for
/// the next one, so an outage of the store loses no usage; the store reads `up` again once a write succeeds.
///
/// Every database call goes through one serial queue, so a write and a usage query never interleave.
public final class StatePersister: Service, Sendable {
    let database: any StateDatabase
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

    /// Whether the last write reached the store.
    private let up = Locked(true)
    /// Applies other replicas' key changes while the shared store is open.
    private let listener = Locked<Task<Void, Never>?>(nil)
    /// Reserves configured quotas across replicas; nil for a state file.
    let quotaGate: SharedQuotaGate?
    /// The response cache's tier shared by replicas; nil for a state file.
    let cacheTier: SharedCacheTier?
    let activity: GatewayActivity

    public var path: String { database.location }
    public var isStoreUp: Bool { up.withLock { $0 } }

    /// Records whether the last write reached the store; true when that changed (worth one log line).
    private func markStore(up isUp: Bool) -> Bool {
        up.withLock { current in
            defer { current = isUp }
            return current != isUp
        }
    }

    private init(
        database: any StateDatabase, store: SnapshotStore, usage: UsageLedger, clock: any WallClock, logger: Logger, every: Duration,
        quotaGate: SharedQuotaGate?, cacheTier: SharedCacheTier?, activity: GatewayActivity
    ) {
        self.database = database
        self.quotaGate = quotaGate
        self.cacheTier = cacheTier
        self.activity = activity
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
        try await open(
            database: try await StateStore.open(path: path, logger: logger), store: store, usage: usage, clock: clock, logger: logger,
            activity: activity, every: every)
    }

    /// Opens the PostgreSQL store replicas share (`shared:` in routes.yaml) and restores its health. A request
    /// waits at most `timeout` for a quota reservation (or the shared cache tier) before it goes on without it.
    public static func openShared(
        url: PostgresURL, replica: String, timeout: Duration = .milliseconds(50), store: SnapshotStore, usage: UsageLedger,
        clock: any WallClock, logger: Logger, activity: GatewayActivity, every: Duration = .seconds(1)
    ) async throws -> StatePersister {
        let shared = try await SharedStateStore.open(url: url, replica: replica, logger: logger)
        let live = (try? await shared.liveReplicas(at: clock.now())) ?? 1
        let gate = SharedQuotaGate(store: shared, timeout: timeout, clock: clock, logger: logger, liveReplicas: live)
        let persister = try await open(
            database: shared, store: store, usage: usage, clock: clock, logger: logger, activity: activity, every: every, quotaGate: gate,
            cacheTier: SharedCacheTier(store: shared, timeout: timeout))
        await persister.shareHealthChanges(shared, activity: activity)
        return persister
    }

    /// Publishes this replica's health changes (keys, models, rate-limit holds) as they happen and applies the other
    /// replicas' (design.md §8: visible everywhere within a second). Returns once it listens (or after 5 s), so a
    /// replica that starts serving hears what the others say from its first request. Each time the channel is
    /// listened to again after a dropped connection, the saved states are read back for what was missed.
    /// The 1 s write of saved states stays the record a replica reads at start.
    private func shareHealthChanges(_ shared: SharedStateStore, activity: GatewayActivity) async {
        let (store, clock, logger) = (self.store, self.clock, self.logger)
        activity.observe { events in
            let health = store.snapshot.health
            let changes = events.compactMap { health.sharedChange(for: $0) }
            guard !changes.isEmpty else { return }
            Task {
                for change in changes {
                    do { try await shared.publish(change) } catch { logger.debug("state: cannot tell other replicas about \(change.subject.name): \(error)") }
                }
            }
        }
        let (started, starts) = AsyncStream<Void>.makeStream()
        let listening = Task {
            await shared.listen(
                { change in
                    let events = store.snapshot.health.applyShared(change, at: clock.now())
                    activity.report(events.map(Self.heard), logger: logger, shared: false)
                },
                listening: { starts.yield() })
            starts.finish()
        }
        listener.withLock { $0 = listening }
        // The first start makes this replica ready; later ones (after a dropped connection) read back what was missed.
        let (ready, readied) = AsyncStream<Void>.makeStream()
        Task { [weak self] in
            var first = true
            for await _ in started {
                if first {
                    first = false
                    readied.finish()
                } else if let self {
                    await self.resync(store.snapshot.health, at: clock.now())
                }
            }
        }
        let listens = try? await shared.bounded(.seconds(5)) {
            for await _ in ready {}
            return true
        }
        if listens != true { logger.warning("state: not yet listening for other replicas' changes; serving meanwhile") }
    }

    /// An event applied from another replica says so in its reason.
    static func heard(_ event: HealthEvent) -> HealthEvent {
        var event = event
        event.reason = "from another replica: \(event.reason)"
        return event
    }

    /// Whether the store is PostgreSQL shared by replicas, rather than this process's own file.
    public var isShared: Bool { database is SharedStateStore }

    /// The replicas the shared store has seen, with when each last wrote; empty for a state file or a store that is down.
    public func replicas() async -> [(name: String, seen: Timestamp)] {
        guard let shared = database as? SharedStateStore else { return [] }
        return (try? await shared.replicas()) ?? []
    }

    /// Restores what `database` holds into the current health and keeps writing to it.
    static func open(
        database: any StateDatabase, store: SnapshotStore, usage: UsageLedger, clock: any WallClock, logger: Logger, activity: GatewayActivity,
        every: Duration = .seconds(1), quotaGate: SharedQuotaGate? = nil, cacheTier: SharedCacheTier? = nil
    ) async throws -> StatePersister {
        let persister = StatePersister(
            database: database, store: store, usage: usage, clock: clock, logger: logger, every: every, quotaGate: quotaGate, cacheTier: cacheTier,
            activity: activity)
        let saved = try await database.load()
        let now = clock.now()
        let events = store.snapshot.health.restore(saved, at: now)
        activity.report(events, logger: logger)
        try await database.prune(before: UsageLedger.firstDay(of: keepDays, at: now))
        logger.notice("state: \(database.location) (\(events.count) saved key or account states still in force)")
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
        listener.withLock { $0?.cancel() }
        await serial { await self.database.close() }
    }

    /// Writes the current health and the usage counted since the last write, in one transaction.
    public func flush() async {
        await serial {
            let now = self.clock.now()
            let rows = self.usage.drain()
            let health = self.store.snapshot.health
            let state = health.savedState(at: now)
            do {
                try await self.database.write(state, usage: rows, at: now)
            } catch {
                self.usage.restore(rows)
                await self.quotaGate?.storeAnswered(false, liveReplicas: nil, health: health)
                self.cacheTier?.storeAnswered(false)
                if self.markStore(up: false) {
                    self.logger.error("state: store down, keeping usage until it is back: \(self.database.location): \(error)")
                }
                return
            }
            if self.markStore(up: true) {
                self.logger.notice("state: store up again, buffered usage written: \(self.database.location)")
                await self.resync(health, at: now)
            }
            if let shared = self.database as? SharedStateStore {
                await self.quotaGate?.storeAnswered(true, liveReplicas: try? await shared.liveReplicas(at: now), health: health)
                await self.exchangeOutcomes(shared, health, at: now)
                await self.cacheTier?.flush(at: now)
            }
            await self.pruneWhenDue(at: now)
        }
    }

    /// Shares this replica's key outcomes and weighs every other's: a key failing on every replica together is
    /// disabled here too (and, through the channel, everywhere at once).
    private func exchangeOutcomes(_ shared: SharedStateStore, _ health: HealthBook, at now: Timestamp) async {
        let mine = health.takeUnsharedOutcomes()
        do {
            let others = try await shared.exchangeOutcomes(mine, at: now, window: health.table.health.window)
            activity.report(health.takeRemoteOutcomes(others, at: now), logger: logger)
        } catch {
            health.returnUnsharedOutcomes(mine)
        }
    }

    /// After an outage of the store: every key state still in force on any replica, at least as restrictive as
    /// this replica's, is taken on.
    private func resync(_ health: HealthBook, at now: Timestamp) async {
        guard let saved = try? await database.load() else { return }
        activity.report(health.resync(saved, at: now).map(Self.heard), logger: logger, shared: false)
    }

    /// Drops daily totals older than `keepDays`, at most hourly.
    private func pruneWhenDue(at now: Timestamp) async {
        let due = lastPrune.withLock { last in
            guard now - last >= .seconds(3600) else { return false }
            last = now
            return true
        }
        guard due else { return }
        do {
            try await database.prune(before: UsageLedger.firstDay(of: Self.keepDays, at: now))
            try await (database as? SharedStateStore)?.pruneOutcomes(before: now - .seconds(3600))
        } catch {
            logger.warning("state: cannot drop old daily totals from \(database.location): \(error)")
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
