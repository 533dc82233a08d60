import NIOCore
import PostgresNIO
import SwitchyardCore

/// A complete answer as the shared cache tier keeps it, with when it was stored (its TTL runs from then on
/// every replica).
struct SharedCacheEntry: Sendable {
    var key: CacheKey
    var answer: CachedAnswer
    var storedAt: Timestamp
    var expires: Timestamp
}

extension SharedStateStore {
    /// The answer stored under `key` by any replica, if it has not expired; bounded by `timeout`.
    func cachedAnswer(_ key: CacheKey, at now: Timestamp, timeout: Duration) async throws -> SharedCacheEntry? {
        let digest = Self.bytes(key)
        let ms = now.millisecondsSinceEpoch
        return try await bounded(timeout) {
            let rows = try await self.run(
                """
                SELECT stored_ms, expires_ms, id, created, upstream_model, model_name, key_label, content, finish_reason, usage_json,
                  body, replayable FROM cache_entries WHERE digest = \(digest) AND expires_ms > \(ms)
                """)
            for (stored, expires, id, created, upstream, model, label, content, finish, usage, body, replayable) in try rows.decode(
                (Int64, Int64, String, Int64, String, String, String, String, String, String?, ByteBuffer?, Bool).self)
            {
                var answer = CachedAnswer(
                    id: id, created: Int(created), upstreamModel: upstream, modelName: model, keyLabel: label, content: content,
                    finishReason: finish, usageJSON: usage, body: body.map { Array($0.readableBytesView) })
                answer.replayable = replayable
                return SharedCacheEntry(
                    key: key, answer: answer, storedAt: Timestamp(millisecondsSinceEpoch: stored), expires: Timestamp(millisecondsSinceEpoch: expires))
            }
            return nil
        }
    }

    /// Stores answers for every replica, in one transaction; a newer answer for the same request replaces the older.
    func storeAnswers(_ entries: [SharedCacheEntry]) async throws {
        guard !entries.isEmpty else { return }
        let logger = self.logger
        try await bounded {
            try await self.transaction { c in
                for e in entries {
                    let a = e.answer
                    try await c.run(
                        """
                        INSERT INTO cache_entries VALUES (\(Self.bytes(e.key)), \(e.storedAt.millisecondsSinceEpoch), \(e.expires.millisecondsSinceEpoch),
                          \(a.id), \(Int64(a.created)), \(a.upstreamModel), \(a.modelName), \(a.keyLabel), \(a.content), \(a.finishReason),
                          \(a.usageJSON), \(a.body.map { ByteBuffer(bytes: $0) }), \(a.replayable))
                        ON CONFLICT (digest) DO UPDATE SET stored_ms = excluded.stored_ms, expires_ms = excluded.expires_ms, id = excluded.id,
                          created = excluded.created, upstream_model = excluded.upstream_model, model_name = excluded.model_name,
                          key_label = excluded.key_label, content = excluded.content, finish_reason = excluded.finish_reason,
                          usage_json = excluded.usage_json, body = excluded.body, replayable = excluded.replayable
                        """, logger: logger)
                }
            }
        }
    }

    /// Drops expired answers.
    func pruneCache(at now: Timestamp) async throws {
        let ms = now.millisecondsSinceEpoch
        _ = try await bounded { try await self.run("DELETE FROM cache_entries WHERE expires_ms <= \(ms)") }
    }

    /// Empties the shared tier (an operator's `POST /admin/cache/clear`).
    func clearCache() async throws {
        _ = try await bounded { try await self.run("DELETE FROM cache_entries") }
    }

    private static func bytes(_ key: CacheKey) -> ByteBuffer {
        withUnsafeBytes(of: key.digest) { ByteBuffer(bytes: $0) }
    }
}
