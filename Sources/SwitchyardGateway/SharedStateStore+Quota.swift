import PostgresNIO
import SwitchyardCore

extension SharedStateStore {
    /// Reserves one send against every quota of a request, over all replicas at once (one round trip), bounded
    /// by `timeout`: a slow store is as good as none, and the caller falls back to its share.
    func reserve(_ quotas: [SharedQuota], at now: Timestamp, timeout: Duration) async throws -> QuotaAnswer {
        let subjects = quotas.map(\.subject)
        let perMinute = quotas.map { Int64($0.perMinute ?? -1) }
        let perDay = quotas.map { Int64($0.perDay ?? -1) }
        let ms = now.millisecondsSinceEpoch
        return try await bounded(timeout) {
            let rows = try await self.run("SELECT back_ms, refused FROM switchyard_reserve(\(subjects), \(perMinute), \(perDay), \(ms))")
            for (back, refused) in try rows.decode((Int64, String?).self) {
                guard let refused, back > 0 else { return .granted }
                return .refused(subject: refused, until: Timestamp(millisecondsSinceEpoch: back))
            }
            return .granted
        }
    }

    /// Counts sends this replica made on its own share while the store was unreachable.
    func countSends(_ sends: [String: [Timestamp]], at now: Timestamp) async throws {
        let ms = now.millisecondsSinceEpoch
        try await bounded {
            try await self.transaction { c in
                for (subject, times) in sends.sorted(by: { $0.key < $1.key }) where !times.isEmpty {
                    let list = times.map(\.millisecondsSinceEpoch)
                    try await c.run("SELECT switchyard_count_sends(\(subject), \(list), \(ms))", logger: self.logger)
                }
            }
        }
    }
}
