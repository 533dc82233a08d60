import PostgresNIO
import SwitchyardCore

extension SharedStateStore {
    /// Adds this replica's key outcomes since its last write and reads every other replica's inside `window`, in
    /// one transaction: the evidence the 50% rule weighs over all replicas.
    func exchangeOutcomes(
        _ mine: [(label: String, ok: Int, failed: Int)], at now: Timestamp, window: Duration
    ) async throws -> [String: [OutcomeBucket]] {
        let (replica, logger) = (self.replica, self.logger)
        let bucket = now.millisecondsSinceEpoch / 1000 * 1000
        let horizon = (now - window).millisecondsSinceEpoch
        return try await bounded {
            try await self.transaction { c in
                for o in mine {
                    try await c.run(
                        """
                        INSERT INTO outcome_counts VALUES (\(o.label), \(replica), \(bucket), \(Int64(o.ok)), \(Int64(o.failed)))
                        ON CONFLICT (label, replica, bucket_ms) DO UPDATE SET ok = outcome_counts.ok + excluded.ok,
                          failed = outcome_counts.failed + excluded.failed
                        """, logger: logger)
                }
                var others: [String: [OutcomeBucket]] = [:]
                let rows = try await c.run(
                    """
                    SELECT label, bucket_ms, SUM(ok)::BIGINT, SUM(failed)::BIGINT FROM outcome_counts
                    WHERE replica <> \(replica) AND bucket_ms > \(horizon) GROUP BY label, bucket_ms
                    """, logger: logger)
                for (label, at, ok, failed) in try rows.decode((String, Int64, Int64, Int64).self) {
                    others[label, default: []].append(OutcomeBucket(at: Timestamp(millisecondsSinceEpoch: at), ok: Int(ok), failed: Int(failed)))
                }
                return others
            }
        }
    }

    /// Drops key outcomes counted before `before` (the 50% rule's window is far shorter than the hour kept).
    func pruneOutcomes(before: Timestamp) async throws {
        let ms = before.millisecondsSinceEpoch
        _ = try await bounded { try await self.run("DELETE FROM outcome_counts WHERE bucket_ms < \(ms)") }
    }
}
