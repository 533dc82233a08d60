import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

/// Several replicas keeping one state in a real PostgreSQL on loopback (a throwaway cluster each test starts):
/// one usage history, live replicas, saved health read back by a replica that starts later, and an outage of
/// the store that loses no usage. Run them alone with `swift test --filter SharedStateTests`.
@Suite(.serialized) struct SharedStateTests {
    @Test func usageIsOneHistoryOverReplicasAndOutlivesThem() async throws {
        try await PostgresCluster.with { cluster in
            try await withHarness(shared: (cluster.url, "replica-a")) { a in
                try await withHarness(shared: (cluster.url, "replica-b")) { b in
                    for i in 0..<5 { #expect(try await a.post(chat("via a \(i)")).status == 200) }
                    for i in 0..<7 { #expect(try await b.post(chat("via b \(i)")).status == 200) }
                    let bothSeeAll = try await eventually(3) {
                        let (onA, onB) = (try await usageTotal(a), try await usageTotal(b))
                        return onA == 12 && onB == 12
                    }
                    #expect(bothSeeAll, "every replica's requests on each")
                    let stats = try await sharedState(a)
                    #expect(stats["shared"] as? Bool == true)
                    #expect(stats["status"] as? String == "up")
                    let names = (stats["replicas"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                    #expect(names == ["replica-a", "replica-b"])
                    let everything = try await a.get("/admin/stats").body + a.get("/metrics").body
                    #expect(!everything.contains("unused-password"), "the URL's password is never shown")
                    #expect(everything.contains("switchyard_shared_store_up 1"))
                    #expect(everything.contains(#"switchyard_replica_last_seen_timestamp_seconds{replica="replica-b"}"#), "replicas in /metrics")
                }
            }
            // Every replica gone and a new one started: the history is still there, and the gone ones' heartbeats
            // expire from the list once they are 5 s old.
            try await withHarness(shared: (cluster.url, "replica-c")) { c in
                let total = try await usageTotal(c)
                #expect(total == 12)
                c.clock.advance(by: .seconds(6))
                let listed = try await eventually(2) {
                    let names = (try await sharedState(c)["replicas"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                    return names == ["replica-c"]
                }
                #expect(listed, "only the live replica is listed")
            }
        }
    }

    @Test func aKeyRemovedOnOneReplicaStaysOutForAReplicaStartedLater() async throws {
        try await PostgresCluster.with { cluster in
            try await withHarness(script: "keys: { \(Harness.key(2)): invalid_key }", shared: (cluster.url, "replica-a")) { a in
                for i in 0..<4 { #expect(try await a.post(chat("find the bad key \(i)")).status == 200) }
                #expect(a.keyState("openrouter#2") == "removed")
                try await Task.sleep(for: .milliseconds(200))
                try await withHarness(shared: (cluster.url, "replica-c")) { c in
                    #expect(c.keyState("openrouter#2") == "removed", "a state still in force anywhere is read back")
                    #expect(c.keyState("openrouter#1") == "healthy")
                }
            }
        }
    }

    @Test func aStoreOutageLosesNoUsageAndTheReplicaSaysSo() async throws {
        try await PostgresCluster.with { cluster in
            let logs = LogCapture()
            try await withHarness(shared: (cluster.url, "replica-a"), logs: logs) { a in
                for i in 0..<2 { #expect(try await a.post(chat("before \(i)")).status == 200) }
                #expect(try await eventually(3) { try await usageTotal(a) == 2 })
                await cluster.stop()
                for i in 0..<4 { #expect(try await a.post(chat("during \(i)")).status == 200, "requests do not wait on the store") }
                #expect(try await eventually(6) { try await sharedState(a)["status"] as? String == "degraded" })
                #expect(try await a.get("/metrics").body.contains("switchyard_shared_store_up 0"))
                try await cluster.start()
                #expect(try await eventually(5) { try await sharedState(a)["status"] as? String == "up" }, "up again within 5 s")
                #expect(try await usageTotal(a) == 6, "the outage's usage was buffered and written")
                #expect(logs.text.contains("store down") && logs.text.contains("store up again"))
                #expect(!logs.text.contains("unused-password"))
            }
        }
    }

    @Test func keyChangesReachTheOtherReplicasWithinASecond() async throws {
        try await PostgresCluster.with { cluster in
            // Replica A's upstream rejects key 3; B's never sees it fail, yet stops using it once A set it aside.
            try await withHarness(script: "keys: { \(Harness.key(3)): invalid_key }", shared: (cluster.url, "replica-a")) { a in
                try await withHarness(shared: (cluster.url, "replica-b")) { b in
                    for i in 0..<4 { #expect(try await a.post(chat("find it \(i)")).status == 200) }
                    #expect(a.keyState("openrouter#3") == "removed")
                    let removed = Date()
                    #expect(try await eventually(1) { b.keyState("openrouter#3") == "removed" }, "B hears of it within a second")
                    #expect(Date().timeIntervalSince(removed) < 1 * timingScale)
                    for i in 0..<8 { _ = try await b.post(chat("on b \(i)")) }
                    #expect(!b.upstreamRequests().contains { $0.key == "openrouter#3" })

                    // An operator's disable on A is in force on B; the enable lifts it on both.
                    _ = try await a.post("", path: "/admin/keys/disable?key=openrouter%231")
                    #expect(a.keyState("openrouter#1") == "manually_disabled")
                    #expect(try await eventually(1) { b.keyState("openrouter#1") == "manually_disabled" })
                    _ = try await a.post("", path: "/admin/keys/enable?key=openrouter%231")
                    #expect(try await eventually(1) { b.keyState("openrouter#1") == "healthy" })
                }
            }
        }
    }

    @Test func aKilledReplicaDropsOffTheListAndTheOthersKeepServing() async throws {
        try await PostgresCluster.with { cluster in
            try await withHarness(shared: (cluster.url, "replica-a")) { a in
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-replica-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                let config = Harness.config.replacingOccurrences(of: "BASE", with: a.fake.baseURL)
                    + "\nserver: { listen: 127.0.0.1:0 }\nshared: { postgres_url_env: SWITCHYARD_POSTGRES_URL, replica: replica-b }\n"
                let configPath = directory.appendingPathComponent("routes.yaml").path
                try config.write(toFile: configPath, atomically: true, encoding: .utf8)
                let (b, url) = try await GatewayProcess.launch(
                    configPath: configPath, log: directory.appendingPathComponent("b.log").path, environment: ["SWITCHYARD_POSTGRES_URL": cluster.url])
                let reply = try await a.client.execute(HTTPClientRequest(url: url + "/healthz"), timeout: .seconds(5))
                #expect(reply.status == .ok)
                func listed() async throws -> [String] {
                    (try await sharedState(a)["replicas"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                }
                #expect(try await eventually(3) { try await listed() == ["replica-a", "replica-b"] }, "B's heartbeat is seen")
                kill(b.pid, SIGKILL)
                #expect(b.wait() == SIGKILL, "killed, not exited")
                for i in 0..<5 { #expect(try await a.post(chat("after the kill \(i)")).status == 200) }
                // A's clock, moved past the heartbeat's 5 s expiry of B's last write (stamped by the real clock).
                a.clock.advance(by: .seconds(Date().timeIntervalSince1970 - a.clock.now().secondsSinceEpoch + 6))
                #expect(try await eventually(2) { try await listed() == ["replica-a"] }, "B's heartbeat expired")
            }
        }
    }

    @Test func aKeyFailingOnEveryReplicaTogetherIsDisabledThoughNoneSawEnoughAlone() async throws {
        // Each replica's upstream fails key 1's first 3 requests, then serves: 5 requests on key 1 per replica are
        // 60% failures, under min_requests (10) on any one replica, over the 50% rule on two together.
        let config = Harness.config + "\nrouting:\n  key_selection: round_robin\n"
        try await PostgresCluster.with { cluster in
            try await withReplicas(["replica-a", "replica-b", "replica-c"], cluster: cluster, config: config,
                script: "keys: { \(Harness.key(1)): { fault: error_500, times: 3 } }"
            ) { replicas in
                let (a, b, c) = (replicas[0], replicas[1], replicas[2])
                for (name, r) in [("a", a), ("b", b)] {
                    var sent = 0
                    while r.upstreamRequests().filter({ $0.key == "openrouter#1" }).count < 5, sent < 60 {
                        #expect(try await r.post(chat("\(name) \(sent)")).status == 200, "the other keys answer")
                        sent += 1
                    }
                    #expect(r.upstreamRequests().filter { $0.key == "openrouter#1" }.count == 5)
                    // A's 5 outcomes alone are under min_requests. B may already count A's beside its own (they
                    // reach it while it sends), so B's state is checked with every replica's below.
                    if name == "a" { #expect(r.keyState("openrouter#1") == "healthy", "5 outcomes alone are under min_requests") }
                    await r.persister?.flush()
                }
                for r in [a, b, c] {
                    #expect(try await eventually(1) { r.keyState("openrouter#1") == "disabled" }, "disabled on every replica")
                }
                let reason = try await b.get("/admin/stats").body
                #expect(reason.contains("error rate 60% over the last 10 requests on every replica (5 elsewhere)"), "\(reason.prefix(600))")
                for i in 0..<8 { #expect(try await c.post(chat("on c \(i)")).status == 200) }
                #expect(!c.upstreamRequests().contains { $0.key == "openrouter#1" })
            }
        }
    }

    @Test func rateLimitHoldsAndModelStatesReachTheOtherReplicas() async throws {
        let fast = "meta-llama/llama-3.1-8b-instruct:free"
        let other = "google/gemma-2-9b-it:free"
        // On A, fast-8k is rate-limited upstream for everyone (a model-wide hold), then other-8k answers a plain
        // 429 (held on the pair it was sent on); B's upstream is healthy, so B learns both only from A.
        let script = #"models_behavior: { "\#(fast)": { fault: upstream_rate_limited, retry_after: 30 } }"#
        try await PostgresCluster.with { cluster in
            try await withHarness(script: script, shared: (cluster.url, "replica-a")) { a in
                try await withHarness(shared: (cluster.url, "replica-b")) { b in
                    #expect(try await a.post(chat("hold it")).status == 200)
                    #expect(a.store.snapshot.health.modelState(0, at: a.clock.now()).state.name == "rate_limited")
                    #expect(
                        try await eventually(1) { b.store.snapshot.health.modelState(0, at: b.clock.now()).state.name == "rate_limited" },
                        "B holds the model within a second")
                    try a.fake.updateBehavior(#"models_behavior: { "\#(other)": { fault: rate_limit, retry_after: 30 } }"#)
                    for i in 0..<3 { _ = try await a.post(chat("pair \(i)")) }
                    let heldOnA = a.store.snapshot.health.rateLimitHolds(at: a.clock.now()).map(\.name)
                    #expect(!heldOnA.isEmpty, "A holds a narrower limit")
                    #expect(
                        try await eventually(1) {
                            Set(b.store.snapshot.health.rateLimitHolds(at: b.clock.now()).map(\.name)).isSuperset(of: heldOnA)
                        }, "B holds what A holds: \(heldOnA)")
                    for i in 0..<6 { #expect(try await b.post(chat("on b \(i)")).status == 200) }
                    #expect(!b.upstreamRequests().contains { $0.model == fast }, "B never sends the held model")
                }
            }
        }
    }
}
