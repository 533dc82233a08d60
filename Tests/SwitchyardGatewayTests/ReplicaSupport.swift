import Foundation
import Testing

/// Helpers for tests of several replicas on one shared store.

/// Starts one gateway replica per name on `cluster`, each with its own fake upstream, for the length of `body`.
/// A shared-store call waits 50 ms at most, longer on sanitizer builds, whose replicas run 3-15x slower.
func withReplicas(
    _ names: [String], cluster: PostgresCluster, config: String = Harness.config, script: String = "",
    sharedTimeout: Duration = .milliseconds(Int64(50 * timingScale)), _ body: ([Harness]) async throws -> Void
) async throws {
    func start(_ i: Int, _ started: [Harness]) async throws {
        guard i < names.count else { return try await body(started) }
        try await withHarness(config: config, script: script, shared: (cluster.url, names[i]), sharedTimeout: sharedTimeout) { h in
            try await start(i + 1, started + [h])
        }
    }
    try await start(0, [])
}

/// Requests counted in `/admin/usage` on `h`, over every replica.
func usageTotal(_ h: Harness) async throws -> Int {
    let body = try await h.get("/admin/usage?days=1").body
    let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    let rows = json["usage"] as? [[String: Any]] ?? []
    return rows.reduce(0) { $0 + (($1["requests"] as? Int) ?? 0) }
}

/// `/admin/stats`' `state` object: the store, its status, the replicas.
func sharedState(_ h: Harness) async throws -> [String: Any] {
    let body = try await h.get("/admin/stats").body
    let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    return try #require(json["state"] as? [String: Any])
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let end = Date().addingTimeInterval(seconds * timingScale)
    while Date() < end {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
