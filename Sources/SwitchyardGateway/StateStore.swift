import Logging
import SQLiteNIO
import SwitchyardCore

/// The SQLite file that keeps key and account health and daily usage across restarts.
///
/// WAL journal: a write is one transaction, so a crash (even `kill -9`) loses at most the changes not yet
/// written and never leaves the file half-written. Only `StatePersister` talks to it, one call at a time.
struct StateStore: StateDatabase {
    let db: SQLiteConnection
    let path: String
    var location: String { path }
    /// One thread of its own for SQLite's blocking calls, shut down with the store.
    let threads: NIOThreadPool

    static let schema = [
        """
        CREATE TABLE IF NOT EXISTS key_state (
          label TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL, until_ms INTEGER,
          reason TEXT NOT NULL, disable_level INTEGER NOT NULL, removal_level INTEGER NOT NULL, saved_ms INTEGER NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS account_state (
          name TEXT PRIMARY KEY, exhausted_until_ms INTEGER, reason TEXT NOT NULL, minute_ms TEXT NOT NULL,
          day_start_ms INTEGER NOT NULL, today INTEGER NOT NULL, saved_ms INTEGER NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS key_quota (
          name TEXT PRIMARY KEY, exhausted_until_ms INTEGER, reason TEXT NOT NULL, minute_ms TEXT NOT NULL,
          day_start_ms INTEGER NOT NULL, today INTEGER NOT NULL, saved_ms INTEGER NOT NULL)
        """,
        """
        CREATE TABLE IF NOT EXISTS daily_usage (
          day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, failures INTEGER NOT NULL,
          prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, PRIMARY KEY (day, key, model))
        """,
    ]

    static func open(path: String, logger: Logger) async throws -> StateStore {
        let threads = NIOThreadPool(numberOfThreads: 1)
        threads.start()
        let db: SQLiteConnection
        do {
            db = try await SQLiteConnection.open(
                storage: .file(path: path), threadPool: threads, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any())
        } catch {
            try? await threads.shutdownGracefully()
            throw error
        }
        do {
            _ = try await db.query("PRAGMA journal_mode=WAL")
            _ = try await db.query("PRAGMA synchronous=NORMAL")
            for statement in schema { _ = try await db.query(statement) }
        } catch {
            try? await db.close()
            try? await threads.shutdownGracefully()
            throw error
        }
        return StateStore(db: db, path: path, threads: threads)
    }

    func close() async {
        try? await db.close()
        try? await threads.shutdownGracefully()
    }

    // MARK: health

    func load() async throws -> SavedState {
        var saved = SavedState()
        for row in try await db.query("SELECT label, fingerprint, state, until_ms, reason, disable_level, removal_level FROM key_state") {
            guard let label = row.column("label")?.string, let fingerprint = row.column("fingerprint")?.string,
                let state = row.column("state")?.string
            else { continue }
            saved.keys.append(
                SavedState.Key(
                    label: label, fingerprint: fingerprint, state: state, until: Self.timestamp(row.column("until_ms")),
                    reason: row.column("reason")?.string ?? "", disableLevel: row.column("disable_level")?.integer ?? 0,
                    removalLevel: row.column("removal_level")?.integer ?? 0))
        }
        saved.accounts = try await counts(in: "account_state")
        saved.keyQuotas = try await counts(in: "key_quota")
        return saved
    }

    /// Reads quota counts saved in `table` (`account_state` or `key_quota`, which share their columns).
    private func counts(in table: String) async throws -> [SavedState.Account] {
        try await db.query("SELECT name, exhausted_until_ms, reason, minute_ms, day_start_ms, today FROM \(table)").compactMap { row in
            guard let name = row.column("name")?.string else { return nil }
            let minute = (row.column("minute_ms")?.string ?? "").split(separator: ",").compactMap { Int64($0) }
                .map { Timestamp(millisecondsSinceEpoch: $0) }
            return SavedState.Account(
                name: name, exhaustedUntil: Self.timestamp(row.column("exhausted_until_ms")), reason: row.column("reason")?.string ?? "",
                minute: minute, dayStart: Self.timestamp(row.column("day_start_ms")) ?? Timestamp(nanosecondsSinceEpoch: 0),
                today: row.column("today")?.integer ?? 0)
        }
    }

    /// Replaces the saved health and adds the usage counted since the last write, in one transaction.
    func write(_ state: SavedState, usage: [UsageRow], at now: Timestamp) async throws {
        _ = try await db.query("BEGIN IMMEDIATE")
        do {
            let saved = SQLiteData.integer(Int(now.millisecondsSinceEpoch))
            _ = try await db.query("DELETE FROM key_state")
            for k in state.keys {
                _ = try await db.query(
                    "INSERT INTO key_state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        .text(k.label), .text(k.fingerprint), .text(k.state), Self.data(k.until), .text(k.reason), .integer(k.disableLevel),
                        .integer(k.removalLevel), saved,
                    ])
            }
            for (table, rows) in [("account_state", state.accounts), ("key_quota", state.keyQuotas)] {
                _ = try await db.query("DELETE FROM \(table)")
                for a in rows {
                    let minute = a.minute.map { String($0.millisecondsSinceEpoch) }.joined(separator: ",")
                    _ = try await db.query(
                        "INSERT INTO \(table) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [.text(a.name), Self.data(a.exhaustedUntil), .text(a.reason), .text(minute), Self.data(a.dayStart), .integer(a.today), saved])
                }
            }
            for row in usage {
                _ = try await db.query(
                    """
                    INSERT INTO daily_usage VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (day, key, model) DO UPDATE SET requests = requests + excluded.requests,
                      failures = failures + excluded.failures, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                      completion_tokens = completion_tokens + excluded.completion_tokens
                    """,
                    [
                        .text(row.day), .text(row.key), .text(row.model), .integer(row.requests), .integer(row.failures),
                        .integer(row.promptTokens), .integer(row.completionTokens),
                    ])
            }
            _ = try await db.query("COMMIT")
        } catch {
            _ = try? await db.query("ROLLBACK")
            throw error
        }
    }

    // MARK: usage

    /// Daily totals from `firstDay` (`YYYY-MM-DD`) on, newest first.
    func usage(since firstDay: String) async throws -> [UsageRow] {
        try await db.query(
            """
            SELECT day, key, model, requests, failures, prompt_tokens, completion_tokens FROM daily_usage
            WHERE day >= ? ORDER BY day DESC, key, model
            """, [.text(firstDay)]
        ).compactMap { row in
            guard let day = row.column("day")?.string, let key = row.column("key")?.string, let model = row.column("model")?.string else {
                return nil
            }
            return UsageRow(
                day: day, key: key, model: model, requests: row.column("requests")?.integer ?? 0,
                failures: row.column("failures")?.integer ?? 0, promptTokens: row.column("prompt_tokens")?.integer ?? 0,
                completionTokens: row.column("completion_tokens")?.integer ?? 0)
        }
    }

    /// Drops daily totals older than `firstKept`.
    func prune(before firstKept: String) async throws {
        _ = try await db.query("DELETE FROM daily_usage WHERE day < ?", [.text(firstKept)])
    }

    static func data(_ t: Timestamp?) -> SQLiteData {
        t.map { .integer(Int($0.millisecondsSinceEpoch)) } ?? .null
    }

    static func timestamp(_ data: SQLiteData?) -> Timestamp? {
        guard let ms = data?.integer else { return nil }
        return Timestamp(millisecondsSinceEpoch: Int64(ms))
    }
}
