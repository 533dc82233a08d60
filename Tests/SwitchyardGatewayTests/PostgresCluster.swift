import FakeUpstream
import Foundation
import LocalPostgres

/// A throwaway PostgreSQL cluster on a free loopback port for the shared-state tests (`LocalPostgres`, which
/// bench's `replicas` scenario starts too), started, stopped and started again by the test itself. Its programs
/// run on a thread of their own (`initdb` takes seconds): the tests beside it need the cooperative pool's threads.
final class PostgresCluster: Sendable {
    private let local: LocalPostgres

    var directory: String { local.directory }
    var port: Int { local.port }
    /// Trust authentication on loopback only; the user is the cluster's superuser.
    var url: String { local.url }

    private init(_ local: LocalPostgres) {
        self.local = local
    }

    /// A new cluster, started, for the length of `body`; stopped and removed after it, whatever it throws.
    static func with<T: Sendable>(_ body: (PostgresCluster) async throws -> T) async throws -> T {
        let cluster = PostgresCluster(try await onThread { try LocalPostgres.create() })
        do {
            let result = try await body(cluster)
            await cluster.destroy()
            return result
        } catch {
            await cluster.destroy()
            throw error
        }
    }

    func start() async throws {
        let local = local
        try await onThread { try local.start() }
    }

    /// Stops the server at once (as a crash would), and makes sure it is gone.
    func stop() async {
        let local = local
        _ = try? await onThread { local.stop() }
    }

    /// Stops the server and removes its folder.
    private func destroy() async {
        let local = local
        _ = try? await onThread { local.destroy() }
    }
}
