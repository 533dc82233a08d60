import FakeUpstream
import Foundation
import Testing

/// Configured limits over three replicas on one shared store: exact while the store answers, each replica's
/// share while it does not, and counted again once it is back.
@Suite(.serialized) struct ReplicaQuotaTests {
    static let names = ["replica-a", "replica-b", "replica-c"]

    /// Every key on one account of 30 requests a minute.
    static let oneLimitedAccount = Harness.config.replacingOccurrences(of: "account: b", with: "account: a")
        .replacingOccurrences(of: "    kind: openrouter\n", with: "    kind: openrouter\n    account_limits: { requests_per_minute: 30 }\n")

    /// A limited account's model first, an unlimited account's model after it.
    static let limitedThenSpare = """
        providers:
          openrouter:
            base_url: BASE
            kind: openrouter
            keys:
              - { env: K1, account: a }
              - { env: K2, account: a }
            account_limits: { requests_per_minute: 30 }
          spare:
            base_url: BASE
            kind: openrouter
            keys:
              - { env: K3, account: b }
              - { env: K4, account: b }
        models:
          fast-8k:    { provider: openrouter, upstream: "meta-llama/llama-3.1-8b-instruct:free", context: 8192, speed: 5, quality: 3 }
          fast-spare: { provider: spare, upstream: "google/gemma-2-9b-it:free", context: 8192, speed: 4, quality: 3 }
        routes:
          auto: { prefer: speed, models: [fast-8k, fast-spare] }
        health:
          min_requests: 10
          consecutive_failures_to_cool: 0
        retry:
          max_attempts: 4
          backoff: [0s, 5ms, 10ms]
          attempt_timeout: 3s
          request_deadline: 8s
        """

    /// Requests the limited account (keys 1 and 2) received, over every replica's upstream.
    static func sentToLimited(_ replicas: [Harness]) -> Int {
        replicas.map { r in r.fake.log().requests.filter { $0.key == "openrouter#1" || $0.key == "openrouter#2" }.count }.reduce(0, +)
    }

    @Test func anAccountLimitHoldsOverEveryReplicaTogether() async throws {
        // 150 reservations at once on one account's row, from a debug build on two cores, can queue past the
        // shipped 50 ms; this test is of the store's count, so every reservation is given time to be answered.
        try await PostgresCluster.with { cluster in
            try await withReplicas(Self.names, cluster: cluster, config: Self.oneLimitedAccount, sharedTimeout: .seconds(2)) { replicas in
                let replies = try await withThrowingTaskGroup(of: Harness.Reply.self) { group in
                    for i in 0..<150 { group.addTask { try await replicas[i % 3].post(chat("quota \(i)")) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(replicas.map { $0.fake.log().total }.reduce(0, +) == 30, "exactly the limit reached the upstreams")
                #expect(replies.filter { $0.status == 200 }.count == 30)
                let refused = replies.filter { $0.status == 503 }
                #expect(refused.count == 120, "\(Set(replies.map(\.status)))")
                #expect(refused.allSatisfy { (Int($0.header("retry-after") ?? "") ?? 0) > 0 }, "each 503 says when to come back")
                // A replica whose reservations all came after the others' may have sent nothing: none said no.
                let actions = replicas.flatMap { r in r.fake.log().requests.map(\.action) }
                #expect(actions.allSatisfy { $0 == "ok" }, "no upstream ever said no: \(Set(actions))")
            }
        }
    }

    @Test func withoutTheStoreEachReplicaKeepsToItsShareAndTheOutageIsCountedAfter() async throws {
        try await PostgresCluster.with { cluster in
            try await withReplicas(Self.names, cluster: cluster, config: Self.limitedThenSpare) { replicas in
                for i in 0..<12 { #expect(try await replicas[i % 3].post(chat("before \(i)")).status == 200) }
                #expect(Self.sentToLimited(replicas) == 12)
                await cluster.stop()
                for i in 0..<60 {
                    let reply = try await replicas[i % 3].post(chat("during \(i)"))
                    #expect(reply.status == 200, "the spare account serves: \(reply.body)")
                }
                // 4 sent each before; a share of 30 / 3 = 10 each: 6 more each.
                #expect(Self.sentToLimited(replicas) == 30, "never over the limit in total, and the shares were used")
                try await cluster.start()
                for r in replicas {
                    #expect(try await eventually(5) { try await sharedState(r)["status"] as? String == "up" }, "up again within 5 s")
                }
                // The outage's sends are in the store's count now: the limited account stays full on every replica.
                try await Task.sleep(for: .milliseconds(200))
                for (i, r) in replicas.enumerated() {
                    let reply = try await r.post(chat("after \(i)"))
                    #expect(reply.status == 200 && reply.header("x-switchyard-model") == "fast-spare")
                }
                #expect(Self.sentToLimited(replicas) == 30)
                #expect(try await eventually(3) { try await usageTotal(replicas[0]) == 75 }, "the outage's usage is in the totals")
            }
        }
    }
}
