import Foundation
import LocalPostgres
import SwitchyardCore

/// Where the `replicas` scenario's gateways keep their shared state: the server `--postgres` names, or a
/// throwaway cluster bench starts itself when PostgreSQL is installed.
struct ReplicaStore {
    /// `postgres://user:password@host:port/db`: handed to the replicas in their environment, never printed.
    let url: String
    /// The URL with its password masked, for notes.
    let shown: String
    /// The cluster bench started, removed by `close()`; nil for a server given with `--postgres`.
    private let local: LocalPostgres?

    /// Why the scenario cannot run here, or nil when `open` will find a store.
    static func unavailable(given: String?) -> String? {
        guard given == nil, LocalPostgres.binDirectory == nil else { return nil }
        return "no PostgreSQL: give --postgres postgres://user:password@host:port/db, or install it (scripts/setup) so bench starts a throwaway cluster"
    }

    /// The server `given` names, or a new throwaway cluster (initdb takes seconds).
    static func open(given: String?) throws -> ReplicaStore {
        if let given {
            return ReplicaStore(url: given, shown: try masked(given), local: nil)
        }
        let local = try LocalPostgres.create()
        return ReplicaStore(url: local.url, shown: "a throwaway cluster on 127.0.0.1:\(local.port) (initdb)", local: local)
    }

    /// Stops and removes a cluster bench started; a server given with `--postgres` is left as it was.
    func close() {
        local?.destroy()
    }

    /// `postgres://user:•••@host:port/db`; the error names what is wrong, never the URL.
    static func masked(_ url: String) throws -> String {
        do {
            return try PostgresURL.parse(url).description
        } catch {
            throw BenchError("--postgres: \(error.description)")
        }
    }
}

/// The routing table every replica serves: three providers on bench's fake upstream, one account each, so each
/// measure has a route of its own. Account names carry the run's tag: quotas are counted in the store by
/// account, and a server given with `--postgres` may still hold the last run's minute.
enum ReplicaTable {
    /// The account limit the quota phase must hold over all replicas together.
    static let limitedPerMinute = 30
    /// Large enough never to refuse: the reservation is made and timed, nothing is held back.
    static let meteredPerMinute = 1_000_000
    /// Routes: `limited` (keys 1 and 2), `metered` (key 3), `open` (key 4, no limit).
    static let limitedRoute = "limited", meteredRoute = "metered", openRoute = "open"
    /// The fake upstream's names for the limited account's keys (it labels bench's keys openrouter#1…4).
    static let limitedFakeLabels: Set = [BenchEnvironment.labels[0], BenchEnvironment.labels[1]]
    /// The gateway's label of the key the propagation phase disables (`open`'s only key).
    static let propagationKey = "open#1"
    /// The environment variable that carries the store's URL to the replicas.
    static let urlVariable = "SWITCHYARD_POSTGRES_URL"

    static func config(baseURL: String, listen: String, replica: String, tag: String) -> String {
        let model = "meta-llama/llama-3.1-8b-instruct:free"
        return """
            server: { listen: \(listen), max_body_bytes: 4MB }
            state: off
            shared: { postgres_url_env: \(urlVariable), replica: \(replica) }
            providers:
              limited:
                base_url: \(baseURL)
                kind: openrouter
                keys:
                  - { env: BENCH_KEY_1, account: limited-\(tag) }
                  - { env: BENCH_KEY_2, account: limited-\(tag) }
                account_limits: { requests_per_minute: \(limitedPerMinute) }
              metered:
                base_url: \(baseURL)
                kind: openrouter
                keys:
                  - { env: BENCH_KEY_3, account: metered-\(tag) }
                account_limits: { requests_per_minute: \(meteredPerMinute) }
              open:
                base_url: \(baseURL)
                kind: openrouter
                keys:
                  - { env: BENCH_KEY_4, account: open-\(tag) }
            models:
              limited-8k: { provider: limited, upstream: "\(model)", context: 8192, speed: 5, quality: 3 }
              metered-8k: { provider: metered, upstream: "\(model)", context: 8192, speed: 5, quality: 3 }
              open-8k:    { provider: open, upstream: "\(model)", context: 8192, speed: 5, quality: 3 }
            routes:
              \(limitedRoute): { prefer: speed, models: [limited-8k] }
              \(meteredRoute): { prefer: speed, models: [metered-8k] }
              \(openRoute): { prefer: speed, models: [open-8k] }
            cache: { scope: shared, ttl: 5m, max_entries: 100000, max_bytes: 256MB }
            """
    }
}

/// Three gateway processes on one shared store, each on its own port with its own replica name, all routing to
/// bench's fake upstream. Started the way bench starts its own gateway (`GatewayLauncher.spawn`).
final class ReplicaSet: @unchecked Sendable {
    static let names = ["replica-1", "replica-2", "replica-3"]
    let gateways: [ScenarioGateway]

    var urls: [String] { gateways.map(\.url) }
    var logPaths: [String] { gateways.map(\.logPath) }

    private init(gateways: [ScenarioGateway]) {
        self.gateways = gateways
    }

    /// Spawns the three replicas one after another; those already started are stopped when one fails. Nil when
    /// `env` cannot spawn gateways (no binary, or `--gateway`).
    static func start(env: BenchEnvironment, store: ReplicaStore, tag: String) throws -> ReplicaSet? {
        var keyEnvironment = [ReplicaTable.urlVariable: store.url]
        for (i, key) in BenchEnvironment.keys.enumerated() { keyEnvironment["BENCH_KEY_\(i + 1)"] = key }
        let environment = keyEnvironment
        let baseURL = env.fake.baseURL
        var started: [ScenarioGateway] = []
        do {
            for name in names {
                let gateway = try blocking {
                    try await env.spawnScenarioGateway(
                        name: "replicas/\(name)", config: { ReplicaTable.config(baseURL: baseURL, listen: $0, replica: name, tag: tag) },
                        keyEnvironment: environment)
                }
                guard let gateway else {
                    ReplicaSet(gateways: started).stop()
                    return nil
                }
                started.append(gateway)
            }
        } catch {
            ReplicaSet(gateways: started).stop()
            throw error
        }
        return ReplicaSet(gateways: started)
    }

    func stop() {
        for gateway in gateways { try? blocking { await gateway.stop() } }
    }

    /// Waits until every replica reports the store up and lists all three in `state.replicas` (each has written
    /// its heartbeat once, so each has run its first write); throws after `seconds`.
    func waitUntilListed(seconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let ready = urls.allSatisfy { url in
                guard let stats = try? ReplicaStats.read(url) else { return false }
                return stats.storeUp && Set(stats.replicas) == Set(Self.names)
            }
            if ready { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw BenchError("the replicas did not all see each other on the shared store within \(Int(seconds)) s; see \(logPaths.joined(separator: ", "))")
    }
}

/// What the replicas scenario reads of one replica's `/admin/stats`.
struct ReplicaStats {
    /// Key label → state (`healthy`, `manually_disabled`, …).
    var keyStates: [String: String]
    /// `state.replicas[].name`: the replicas this one saw alive.
    var replicas: [String]
    /// `state.status == "up"` on a shared store.
    var storeUp: Bool

    static func read(_ gatewayURL: String) throws -> ReplicaStats {
        let (status, body) = try HTTP.get(gatewayURL + "/admin/stats")
        guard status == 200, let stats = parse(Array(body.utf8)) else { throw BenchError("\(gatewayURL)/admin/stats: \(status)") }
        return stats
    }

    static func parse(_ body: [UInt8]) -> ReplicaStats? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        var states: [String: String] = [:]
        for key in json["keys"] as? [[String: Any]] ?? [] {
            if let label = key["label"] as? String, let state = key["state"] as? String { states[label] = state }
        }
        let state = json["state"] as? [String: Any] ?? [:]
        let replicas = (state["replicas"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        return ReplicaStats(keyStates: states, replicas: replicas, storeUp: state["shared"] as? Bool == true && state["status"] as? String == "up")
    }
}
