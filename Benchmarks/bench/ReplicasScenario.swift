import FakeUpstream
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// design.md §7 `replicas`: three gateways on one PostgreSQL store (§8). An account limit held over all of them
/// together, an operator's disable reaching the others, an answer cached through one being a hit through the
/// others, and what a quota reservation in the store adds to a request.
struct ReplicasScenario {
    let env: BenchEnvironment
    let options: BenchOptions

    static let condition = "requests_over_account_limit == 0, disable_propagation_ms.p99 <= 1000, cross_replica_hit_rate >= 0.95"
    /// design.md §8's freshness target on loopback, reported beside the pass condition's looser bound.
    static let targetPropagationMs = 250.0
    static let passPropagationMs = 1000.0

    /// How much each phase does: the full run, or the tests' quick one.
    struct Sizes {
        var propagationRounds = 20
        var cachedPrompts = 50
        var reservationPairs = 300
        var accountRequests = 150
        /// The account phase's pace: its requests spread over a few seconds, well inside one minute.
        var accountRate = 50.0

        static let quick = Sizes(propagationRounds: 3, cachedPrompts: 10, reservationPairs: 20, accountRequests: 60, accountRate: 60)
    }

    var sizes: Sizes { options.quick ? .quick : Sizes() }

    func run() throws -> ScenarioReport {
        if let reason = unavailable() { return .skipped("replicas", condition: Self.condition, because: reason) }
        let store = try ReplicaStore.open(given: options.postgres)
        defer { store.close() }
        guard let replicas = try ReplicaSet.start(env: env, store: store, tag: Scenarios.run) else {
            return .skipped("replicas", condition: Self.condition, because: "bench cannot start gateway processes here")
        }
        defer { replicas.stop() }
        // Most requests here are single control calls (stats polls, operator actions), each on a generator of its
        // own: only the account phase's load belongs on the progress line.
        let progress = LoadGenerator.progressLabel
        LoadGenerator.progressLabel = nil
        defer { LoadGenerator.progressLabel = progress }
        try replicas.waitUntilListed()
        var report = ScenarioReport(name: "replicas", condition: Self.condition)
        report.notes.append("store: \(store.shown); replica logs: \(replicas.logPaths.joined(separator: ", "))")
        let propagation = try measurePropagation(replicas)
        let cache = try measureCrossReplicaCache(replicas)
        let reservation = measureReservation(replicas)
        let account = try measureAccountLimit(replicas, progress: progress)
        account.add(to: &report)
        propagation.add(to: &report)
        cache.add(to: &report)
        reservation.add(to: &report)
        report.passed = account.over == 0 && propagation.p99 <= Self.passPropagationMs && propagation.timeouts == 0 && cache.hitRate >= 0.95
        return report
    }

    /// Why the scenario cannot run here, or nil: it needs gateway processes bench starts, and a PostgreSQL.
    private func unavailable() -> String? {
        guard env.ownsFakeUpstream else { return "with --gateway bench measures that gateway alone; it starts the replicas itself only without it" }
        guard GatewayLauncher.binary != nil else {
            return "the replicas are gateway processes and there is no gateway binary at \(GatewayLauncher.binaryPath) (swift build -c release --product switchyard)"
        }
        return ReplicaStore.unavailable(given: options.postgres)
    }

    // MARK: disable propagation

    struct Propagation {
        var disabled = Latencies()
        var enabled = Latencies()
        var timeouts = 0
        var notes: [String] = []

        var p99: Double { disabled.count == 0 ? .infinity : disabled.ms(99) }

        func add(to report: inout ScenarioReport) {
            report.add("disable_propagation_ms.p50", disabled.count == 0 ? .infinity : disabled.ms(50))
            report.add("disable_propagation_ms.p99", p99)
            report.details.append(("enable_propagation_ms.p50", enabled.ms(50)))
            report.details.append(("enable_propagation_ms.p99", enabled.ms(99)))
            report.details.append(("propagation_rounds", Double(disabled.count)))
            report.details.append(("propagation_timeouts", Double(timeouts)))
            let target = ReplicasScenario.targetPropagationMs
            let verdict = p99 <= target ? "met" : "missed"
            report.notes.append(
                "disable propagation p99 \(Report.format(p99)) ms over \(disabled.count) rounds: the design's loopback target (p99 <= \(Int(target)) ms) \(verdict)")
            report.notes += notes
        }
    }

    /// An operator's disable on replica 1, timed until replicas 2 and 3 both report the key `manually_disabled`;
    /// then the enable, waited for on every replica before the next round.
    private func measurePropagation(_ replicas: ReplicaSet) throws -> Propagation {
        var result = Propagation()
        // A store given with --postgres may hold the key disabled from an interrupted run.
        guard try operatorAction("enable", replicas, until: "healthy") != nil else {
            result.notes.append("propagation: \(ReplicaTable.propagationKey) is not healthy on every replica; no round run")
            return result
        }
        for round in 1...sizes.propagationRounds {
            if let ns = try operatorAction("disable", replicas, until: "manually_disabled") {
                result.disabled.record(ns)
            } else {
                result.timeouts += 1
                result.notes.append("propagation round \(round): the disable did not reach every replica within 5 s")
            }
            guard let back = try operatorAction("enable", replicas, until: "healthy") else {
                result.notes.append("propagation round \(round): the enable did not reach every replica within 5 s; rounds stopped")
                break
            }
            result.enabled.record(back)
        }
        return result
    }

    /// Posts `/admin/keys/ACTION` for the propagation key on replica 1 while replicas 2 and 3 are watched from
    /// threads of their own; the time from the post until the later of them showed `state` (ns), nil after 5 s.
    private func operatorAction(_ action: String, _ replicas: ReplicaSet, until state: String) throws -> UInt64? {
        let deadline = Clock.now() + 5_000_000_000
        let watches = replicas.urls.dropFirst().map { StateWatch(url: $0, label: ReplicaTable.propagationKey, state: state, deadline: deadline) }
        let key = ReplicaTable.propagationKey.replacingOccurrences(of: "#", with: "%23")
        let sent = Clock.now()
        let (status, body) = try HTTP.post(replicas.urls[0] + "/admin/keys/\(action)?key=\(key)", "")
        guard status == 200 else { throw BenchError("/admin/keys/\(action) on replica 1: \(status) \(body)") }
        let seen = watches.map { $0.wait() }
        guard let last = seen.compactMap({ $0 }).max(), seen.allSatisfy({ $0 != nil }) else { return nil }
        return last > sent ? last - sent : 0
    }

    // MARK: cross-replica cache

    struct CrossReplicaCache {
        var stored = 0
        var lookups = 0
        var hits = 0
        var hitLatency = Latencies()

        var hitRate: Double { lookups == 0 ? 0 : Double(hits) / Double(lookups) }

        func add(to report: inout ScenarioReport) {
            report.add("cross_replica_hit_rate", hitRate)
            report.details.append(("cross_replica_hits", Double(hits)))
            report.details.append(("cross_replica_lookups", Double(lookups)))
            report.details.append(("cached_through_replica_1", Double(stored)))
            report.details.append(("cross_replica_hit_latency_ms.p50", hitLatency.ms(50)))
            report.details.append(("cross_replica_hit_latency_ms.p99", hitLatency.ms(99)))
        }
    }

    /// Distinct prompts answered through replica 1, then, once its next write has stored them (> 1.2 s), the
    /// same bodies through replicas 2 and 3: the share of those answered from the cache.
    private func measureCrossReplicaCache(_ replicas: ReplicaSet) throws -> CrossReplicaCache {
        let bodies = (0..<sizes.cachedPrompts).map { Prompts.body("\(Scenarios.run) replicas cache \($0)", model: ReplicaTable.openRoute) }
        var result = CrossReplicaCache()
        let first = LoadGenerator.send(bodies.map { LoadRequest(url: replicas.urls[0] + "/v1/chat/completions", body: $0) }, connections: 4)
        result.stored = first.filter { $0.status == 200 }.count
        Thread.sleep(forTimeInterval: 1.5)
        for url in replicas.urls.dropFirst() {
            for answer in LoadGenerator.send(bodies.map { LoadRequest(url: url + "/v1/chat/completions", body: $0) }, connections: 4) {
                result.lookups += 1
                guard answer.status == 200, answer.headers["x-switchyard-cache"] == "hit" else { continue }
                result.hits += 1
                result.hitLatency.record(answer.latencyNs)
            }
        }
        return result
    }

    // MARK: reservation cost

    struct Reservation {
        var reserved = Latencies()
        var unreserved = Latencies()
        var errors = 0

        func add(to report: inout ScenarioReport) {
            report.add("reservation_added_ms.p50", reserved.ms(50) - unreserved.ms(50))
            report.add("reservation_added_ms.p99", reserved.ms(99) - unreserved.ms(99))
            report.details.append(("reserved_latency_ms.p50", reserved.ms(50)))
            report.details.append(("reserved_latency_ms.p99", reserved.ms(99)))
            report.details.append(("unreserved_latency_ms.p50", unreserved.ms(50)))
            report.details.append(("unreserved_latency_ms.p99", unreserved.ms(99)))
            report.details.append(("reservation_errors", Double(errors)))
        }
    }

    /// Single requests on one connection to replica 1, alternating between an account with a limit (reserved in
    /// the store before sending, never refused) and one without; unique prompts, no cache. The first pairs warm
    /// the connections and are not counted.
    private func measureReservation(_ replicas: ReplicaSet) -> Reservation {
        let warmup = min(10, sizes.reservationPairs / 2)
        let url = replicas.urls[0] + "/v1/chat/completions"
        let requests = (0..<(2 * sizes.reservationPairs)).map { i in
            let route = i % 2 == 0 ? ReplicaTable.meteredRoute : ReplicaTable.openRoute
            return LoadRequest(
                url: url, body: Prompts.body("\(Scenarios.run) replicas reservation \(i)", model: route),
                headers: ["Content-Type: application/json", "Cache-Control: no-store"], tag: i)
        }
        var result = Reservation()
        for answer in LoadGenerator.send(requests, connections: 1) where answer.tag >= 2 * warmup {
            guard answer.status == 200, answer.error == nil else {
                result.errors += 1
                continue
            }
            if answer.tag % 2 == 0 { result.reserved.record(answer.latencyNs) } else { result.unreserved.record(answer.latencyNs) }
        }
        return result
    }

    // MARK: account limit over every replica

    struct AccountLimit {
        var sentUpstream = 0
        var served = 0
        var refused = 0
        var refusedWithoutRetryAfter = 0
        var other = 0

        var over: Int { max(0, sentUpstream - ReplicaTable.limitedPerMinute) }

        func add(to report: inout ScenarioReport) {
            report.add("requests_over_account_limit", Double(over))
            report.add("sent_to_upstream", Double(sentUpstream))
            report.add("refused_503", Double(refused))
            report.details.append(("account_limit_per_minute", Double(ReplicaTable.limitedPerMinute)))
            report.details.append(("account_served", Double(served)))
            report.details.append(("account_refused_without_retry_after", Double(refusedWithoutRetryAfter)))
            report.details.append(("account_other_answers", Double(other)))
            if refusedWithoutRetryAfter > 0 || other > 0 {
                report.notes.append("account: \(refusedWithoutRetryAfter) refusals without Retry-After, \(other) answers neither 200 nor 503")
            }
        }
    }

    /// Requests on the limited account spread round-robin over the replicas at a steady pace, all inside one
    /// minute: what reached the fake upstream on that account's keys must stay within its limit.
    private func measureAccountLimit(_ replicas: ReplicaSet, progress: String?) throws -> AccountLimit {
        try env.fake.reset()
        LoadGenerator.progressLabel = progress
        defer { LoadGenerator.progressLabel = nil }
        let total = sizes.accountRequests
        let urls = replicas.urls
        let generator = LoadGenerator(connections: 3 * urls.count)
        var counter = 0
        var result = AccountLimit()
        let seconds = Double(total) / sizes.accountRate + 1
        generator.runOpen(rate: sizes.accountRate, until: Clock.now() + UInt64(seconds * 1e9), next: {
            guard counter < total else { return nil }
            defer { counter += 1 }
            let url = urls[counter % urls.count] + "/v1/chat/completions"
            return LoadRequest(url: url, body: Prompts.body("\(Scenarios.run) replicas account \(counter)", model: ReplicaTable.limitedRoute))
        }, done: { answer in
            switch answer.status {
            case 200: result.served += 1
            case 503:
                result.refused += 1
                if (Int(answer.headers["retry-after"] ?? "") ?? 0) <= 0 { result.refusedWithoutRetryAfter += 1 }
            default: result.other += 1
            }
        })
        result.sentUpstream = try env.fake.log().requests.filter { ReplicaTable.limitedFakeLabels.contains($0.key) }.count
        return result
    }
}

/// Polls one replica's `/admin/stats` every 5 ms over one keep-alive connection, on a thread of its own, until
/// a key shows the wanted state; `wait()` gives when it first did (monotonic ns), or nil at the deadline.
final class StateWatch: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    /// Written by the watching thread before it signals `finished`, read after the wait.
    private var seenAt: UInt64?

    init(url: String, label: String, state: String, deadline: UInt64) {
        let thread = Thread { [self] in
            seenAt = Self.poll(url: url + "/admin/stats", label: label, state: state, deadline: deadline)
            finished.signal()
        }
        thread.start()
    }

    func wait() -> UInt64? {
        finished.wait()
        return seenAt
    }

    private static func poll(url: String, label: String, state: String, deadline: UInt64) -> UInt64? {
        let interval: UInt64 = 5_000_000
        let generator = LoadGenerator(connections: 1)
        var seen: UInt64?
        var lastSent: UInt64 = 0
        generator.runClosed(until: deadline, next: {
            guard seen == nil else { return nil }
            let now = Clock.now()
            if lastSent + interval > now { usleep(UInt32((lastSent + interval - now) / 1000)) }
            lastSent = Clock.now()
            return LoadRequest(url: url, body: [], headers: [], keepBody: true, get: true)
        }, done: { answer in
            guard seen == nil, answer.status == 200, ReplicaStats.parse(answer.body)?.keyStates[label] == state else { return }
            seen = answer.completedAt
        })
        return seen
    }
}

extension LoadGenerator {
    /// Sends a fixed list of requests over `connections` keep-alive connections; the answers in completion order.
    static func send(_ requests: [LoadRequest], connections: Int, seconds: Double = 120) -> [LoadResult] {
        let generator = LoadGenerator(connections: connections)
        var index = 0
        var answers: [LoadResult] = []
        generator.runClosed(until: Clock.now() + UInt64(seconds * 1e9), next: {
            guard index < requests.count else { return nil }
            defer { index += 1 }
            return requests[index]
        }, done: { answers.append($0) })
        return answers
    }
}
