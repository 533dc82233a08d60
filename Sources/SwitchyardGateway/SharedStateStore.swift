import Foundation
import Locking
import Logging
import NIOSSL
import PostgresNIO
import SwitchyardCore

/// PostgreSQL as the state store of several replicas (design.md §8). Each replica writes rows of its own (the
/// health it holds, the usage it counted, a heartbeat) and reads everyone's: usage as totals over replicas,
/// health as the most restrictive state still in force anywhere.
///
/// Only `StatePersister` calls it, once a second, off the request path. Every call is bounded by `callTimeout`,
/// so a store that is down or slow never holds the writer; the persister keeps the usage for the next write.
final class SharedStateStore: StateDatabase {
    let client: PostgresClient
    let replica: String
    let url: PostgresURL
    let logger: Logger
    /// How long one call may take before it counts as failed.
    let callTimeout: Duration
    private let running: Task<Void, Never>

    var location: String { "\(url) as replica \(replica)" }

    /// An arbitrary constant naming the migration lock.
    static let migrationLock: Int64 = 0x5357_4954_4348  // "SWITCH"

    private init(client: PostgresClient, replica: String, url: PostgresURL, logger: Logger, callTimeout: Duration, running: Task<Void, Never>) {
        self.client = client
        self.replica = replica
        self.url = url
        self.logger = logger
        self.callTimeout = callTimeout
        self.running = running
    }

    /// Connects, creates or migrates the schema and registers this replica.
    static func open(url: PostgresURL, replica: String, logger: Logger, callTimeout: Duration = .seconds(2)) async throws -> SharedStateStore {
        let tls: PostgresClient.Configuration.TLS = url.tls ? .require(.makeClientConfiguration()) : .disable
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        configuration.options.connectTimeout = callTimeout
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let running = Task { await client.run() }
        let store = SharedStateStore(client: client, replica: replica, url: url, logger: logger, callTimeout: callTimeout, running: running)
        do {
            // A first connection and the migrations may take longer than a steady-state write: allow 10 s.
            try await store.bounded(.seconds(10)) { try await store.migrate() }
        } catch {
            running.cancel()
            throw error
        }
        return store
    }

    func migrate() async throws {
        let logger = self.logger
        try await transaction { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)", logger: logger)
            let applied = Set(try await connection.run("SELECT version FROM schema_migrations", logger: logger).decode(Int.self))
            for migration in SharedStateSchema.migrations where !applied.contains(migration.version) {
                for statement in migration.statements { try await connection.run(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.run("INSERT INTO schema_migrations VALUES (\(migration.version))", logger: logger)
            }
        }
    }

    /// Ends the client: its pool closes every connection, which fails each call still in flight, so none is left
    /// suspended. Waits for that at most `callTimeout`.
    func close() async {
        running.cancel()
        let running = self.running
        _ = try? await bounded { await running.value }
    }

    // MARK: health

    /// Every replica's saved key states, the most restrictive still in force per key: an operator's disable first,
    /// then the one that lasts longest.
    func load() async throws -> SavedState {
        try await bounded {
            var saved = SavedState()
            let rows = try await self.run(
                """
                SELECT DISTINCT ON (label) label, fingerprint, state, until_ms, reason, disable_level, removal_level FROM key_state
                ORDER BY label, (until_ms IS NULL) DESC, until_ms DESC
                """)
            for (label, fingerprint, state, until, reason, disable, removal) in try rows.decode(
                (String, String, String, Int64?, String, Int, Int).self)
            {
                saved.keys.append(
                    SavedState.Key(
                        label: label, fingerprint: fingerprint, state: state, until: until.map { Timestamp(millisecondsSinceEpoch: $0) },
                        reason: reason, disableLevel: disable, removalLevel: removal))
            }
            return saved
        }
    }

    /// Replaces this replica's saved key states, adds its usage and marks it seen, in one transaction.
    func write(_ state: SavedState, usage: [UsageRow], at now: Timestamp) async throws {
        let replica = self.replica, logger = self.logger
        let ms = now.millisecondsSinceEpoch
        try await bounded {
            try await self.transaction { c in
                try await c.run(
                    """
                    INSERT INTO replicas VALUES (\(replica), \(ms), \(ms)) ON CONFLICT (name) DO UPDATE SET seen_ms = excluded.seen_ms
                    """, logger: logger)
                try await c.run("DELETE FROM key_state WHERE replica = \(replica)", logger: logger)
                for k in state.keys {
                    try await c.run(
                        """
                        INSERT INTO key_state VALUES (\(k.label), \(replica), \(k.fingerprint), \(k.state),
                          \(k.until.map(\.millisecondsSinceEpoch)), \(k.reason), \(k.disableLevel), \(k.removalLevel), \(ms))
                        """, logger: logger)
                }
                for row in usage {
                    try await c.run(
                        """
                        INSERT INTO daily_usage VALUES (\(row.day), \(row.key), \(row.model), \(replica), \(Int64(row.requests)),
                          \(Int64(row.failures)), \(Int64(row.promptTokens)), \(Int64(row.completionTokens)))
                        ON CONFLICT (day, key, model, replica) DO UPDATE SET requests = daily_usage.requests + excluded.requests,
                          failures = daily_usage.failures + excluded.failures,
                          prompt_tokens = daily_usage.prompt_tokens + excluded.prompt_tokens,
                          completion_tokens = daily_usage.completion_tokens + excluded.completion_tokens
                        """, logger: logger)
                }
            }
        }
    }

    // MARK: live health

    /// The channel health changes travel on.
    static let channel = "switchyard_health"

    /// What travels on the channel: one change, from one replica. `kind` says which of the names are set.
    struct Notice: Codable {
        var replica: String
        var kind: String
        var label: String?
        var fingerprint: String?
        var model: String?
        var account: String?
        var state: String
        var untilMs: Int64?
        var reason: String
        var byOperator: Bool

        init(replica: String, _ change: SharedHealthChange) {
            self.replica = replica
            state = change.state
            untilMs = change.until?.millisecondsSinceEpoch
            reason = String(change.reason.prefix(500))
            byOperator = change.byOperator
            switch change.subject {
            case .key(let label, let fingerprint): (kind, self.label, self.fingerprint) = ("key", label, fingerprint)
            case .model(let model): (kind, self.model) = ("model", model)
            case .pair(let key, let model): (kind, label, self.model) = ("pair", key, model)
            case .accountModel(let account, let model): (kind, self.account, self.model) = ("account_model", account, model)
            case .account(let account): (kind, self.account) = ("account", account)
            }
        }

        var change: SharedHealthChange? {
            let subject: SharedHealthChange.Subject
            switch (kind, label, fingerprint, model, account) {
            case ("key", let label?, let fingerprint?, _, _): subject = .key(label: label, fingerprint: fingerprint)
            case ("model", _, _, let model?, _): subject = .model(model)
            case ("pair", let key?, _, let model?, _): subject = .pair(key: key, model: model)
            case ("account_model", _, _, let model?, let account?): subject = .accountModel(account: account, model: model)
            case ("account", _, _, _, let account?): subject = .account(account)
            default: return nil
            }
            return SharedHealthChange(
                subject: subject, state: state, until: untilMs.map { Timestamp(millisecondsSinceEpoch: $0) }, reason: reason, byOperator: byOperator)
        }
    }

    /// Tells every replica listening about a change (one round trip, off the request path).
    func publish(_ change: SharedHealthChange) async throws {
        let payload = String(decoding: try JSONEncoder().encode(Notice(replica: replica, change)), as: UTF8.self)
        _ = try await bounded { try await self.run("SELECT pg_notify(\(Self.channel), \(payload))") }
    }

    /// Hands every other replica's changes to `apply` until cancelled; a dropped connection is reopened with backoff.
    /// `listening` is called each time the channel is listened to (again): what was said meanwhile was missed.
    func listen(_ apply: @escaping @Sendable (SharedHealthChange) -> Void, listening: @escaping @Sendable () -> Void) async {
        var delay = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        delay = .milliseconds(200)
                        listening()
                        for try await notification in notifications {
                            guard let notice = try? JSONDecoder().decode(Notice.self, from: Data(notification.payload.utf8)),
                                notice.replica != self.replica, let change = notice.change
                            else { continue }
                            apply(change)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.debug("state: listening for other replicas' changes failed, again in \(delay.configText): \(error)")
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    // MARK: usage

    /// Daily totals over every replica from `firstDay` on, newest first.
    func usage(since firstDay: String) async throws -> [UsageRow] {
        try await bounded {
            var out: [UsageRow] = []
            let rows = try await self.run(
                """
                SELECT day, key, model, SUM(requests)::BIGINT, SUM(failures)::BIGINT, SUM(prompt_tokens)::BIGINT,
                  SUM(completion_tokens)::BIGINT
                FROM daily_usage WHERE day >= \(firstDay) GROUP BY day, key, model ORDER BY day DESC, key, model
                """)
            for (day, key, model, requests, failures, prompt, completion) in try rows.decode(
                (String, String, String, Int64, Int64, Int64, Int64).self)
            {
                out.append(
                    UsageRow(
                        day: day, key: key, model: model, requests: Int(requests), failures: Int(failures), promptTokens: Int(prompt),
                        completionTokens: Int(completion)))
            }
            return out
        }
    }

    func prune(before firstKept: String) async throws {
        _ = try await bounded { try await self.run("DELETE FROM daily_usage WHERE day < \(firstKept)") }
    }

    // MARK: replicas

    /// This replica and every other that wrote in the last 5 s: the divisor of each limit should the store go away.
    func liveReplicas(at now: Timestamp) async throws -> Int {
        let (since, replica) = (now.millisecondsSinceEpoch - 5000, self.replica)
        return try await bounded {
            let rows = try await self.run("SELECT count(*) FROM replicas WHERE seen_ms > \(since) AND name <> \(replica)")
            return try rows.decode(Int64.self).first.map { Int($0) + 1 } ?? 1
        }
    }

    /// Every replica that ever wrote, with when it was last seen.
    func replicas() async throws -> [(name: String, seen: Timestamp)] {
        try await bounded {
            let rows = try await self.run("SELECT name, seen_ms FROM replicas ORDER BY name")
            return try rows.decode((String, Int64).self).map { ($0, Timestamp(millisecondsSinceEpoch: $1)) }
        }
    }

    /// Runs `body`, failing it after `callTimeout` (or `limit`). The pool would otherwise wait for a connection to a
    /// store that is down, and a task group would wait for that too: the caller is resumed at the bound whatever the
    /// call does, and the call is cancelled and left to end on its own (each does: see `PostgresConnection.run`, and
    /// `close()` fails what is still in flight). A call that ends in time stops the timer.
    func bounded<T: Sendable>(_ limit: Duration? = nil, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = limit ?? callTimeout
        let outcome = Locked<CheckedContinuation<T, any Error>?>(nil)
        return try await withCheckedThrowingContinuation { continuation in
            outcome.withLock { $0 = continuation }
            @Sendable func finish(_ result: Result<T, any Error>) {
                outcome.withLock { pending in
                    pending?.resume(with: result)
                    pending = nil
                }
            }
            let work = Locked<Task<Void, Never>?>(nil)
            let timer = Task {
                do { try await Task.sleep(for: timeout) } catch { return }
                finish(.failure(SharedStoreTimeout(after: timeout)))
                work.withLock { $0?.cancel() }
            }
            work.withLock { w in
                w = Task {
                    do { finish(.success(try await body())) } catch { finish(.failure(error)) }
                    timer.cancel()
                }
            }
        }
    }
}

/// A call to the shared store took longer than its bound.
struct SharedStoreTimeout: Error, CustomStringConvertible {
    var after: Duration
    var description: String { "no answer from the shared store within \(after.configText)" }
}
