import AsyncHTTPClient
import FakeUpstream
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardGateway
import Locking
import Testing

/// A gateway and a fake upstream on ephemeral loopback ports, with a manual clock for health time.
final class Harness: Sendable {
    let fake: FakeUpstreamServer
    let store: SnapshotStore
    let clock: ManualClock
    let client: HTTPClient
    let upstream: UpstreamClient
    let gateway: Gateway
    let port: Int
    private let server: Task<Void, any Error>
    /// Stops the server the way SIGTERM does: no new connections, pending ones closed properly. (Cancelling
    /// its task instead can drop accepted connections still queued for the server, which NIO traps on.)
    private let group: ServiceGroup

    static let keys = [
        "K1": "sk-or-v1-test-key-0000000000000000001", "K2": "sk-or-v1-test-key-0000000000000000002",
        "K3": "sk-or-v1-test-key-0000000000000000003", "K4": "sk-or-v1-test-key-0000000000000000004",
    ]

    static func key(_ n: Int) -> String { keys["K\(n)"]! }

    /// 600 ms, doubled on sanitizer builds, whose full-suite runs otherwise miss it now and then (no more:
    /// two stalls in a row must still fit the 8 s request deadline).
    static let streamTimeout = "\(Int(600 * min(timingScale, 2)))ms"

    static let config = """
        providers:
          openrouter:
            base_url: BASE
            kind: openrouter
            keys:
              - { env: K1, account: a }
              - { env: K2, account: a }
              - { env: K3, account: b }
              - { env: K4, account: b }
        models:
          fast-8k:  { provider: openrouter, upstream: "meta-llama/llama-3.1-8b-instruct:free", context: 8192, speed: 5, quality: 3, prefill: true }
          other-8k: { provider: openrouter, upstream: "google/gemma-2-9b-it:free", context: 8192, speed: 4, quality: 3, prefill: true }
          long:     { provider: openrouter, upstream: "microsoft/phi-3-mini-128k-instruct:free", context: 128000, speed: 2, quality: 3, prefill: true }
          plain:    { provider: openrouter, upstream: "openchat/openchat-7b:free", context: 8192, speed: 3, quality: 3 }
        routes:
          auto:      { prefer: speed, models: [fast-8k, other-8k, long] }
          noprefill: { prefer: listed, models: [plain] }
          polite:    { prefer: listed, models: [plain], last_resort: "Sorry, try again later." }
        health:
          min_requests: 10
          window: 60s
          disable_for: 5m
          consecutive_failures_to_cool: 0
        retry:
          max_attempts: 6
          backoff: [0s, 5ms, 10ms]
          first_token_timeout: \(streamTimeout)
          stream_idle_timeout: \(streamTimeout)
          attempt_timeout: 3s
          request_deadline: 8s
        """

    static let labels = (1...4).map { "  \(key($0)): openrouter#\($0)" }.joined(separator: "\n")

    /// The routes file when the harness was started reloadable.
    let configPath: String?
    /// Keeps health and usage in a state file, when the harness was given one.
    let persister: StatePersister?
    private let persisting: Task<Void, any Error>?

    init(
        config: String = Harness.config, script: String = "", tokens: Set<String> = [], reloadable: Bool = false, adminToken: String? = nil,
        statePath: String? = nil, shared: (url: String, replica: String)? = nil, sharedTimeout: Duration = .milliseconds(50),
        logs: LogCapture? = nil, edit: (inout RoutingTable) -> Void = { _ in }
    ) async throws {
        let fake = try await FakeUpstreamServer.start(script: try FakeScript.parse(script + "\nkey_labels:\n" + Self.labels), threads: 1)
        self.fake = fake
        let yaml = config.replacingOccurrences(of: "BASE", with: fake.baseURL)
        var table: RoutingTable
        if reloadable {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-test-\(UUID().uuidString).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            configPath = path
            table = try ConfigLoader(environment: Self.keys).load(path: path)
        } else {
            configPath = nil
            table = try ConfigLoader(environment: Self.keys).parse(yaml: yaml, file: "routes.yaml", directory: nil)
        }
        edit(&table)
        let clock = ManualClock(Timestamp(secondsSinceEpoch: Date().timeIntervalSince1970))
        self.clock = clock
        let store = SnapshotStore(RoutingSnapshot(table: table, now: clock.now()))
        self.store = store
        var logger = logs.map { capture in Logger(label: "test") { _ in capture } } ?? Logger(label: "test")
        // Hummingbird reports the test's own shutdown of the server at error level; only crashes matter here,
        // unless the test reads the logs.
        logger.logLevel = logs == nil ? .critical : .trace
        let upstream = UpstreamClient(readTimeout: .seconds(10))
        self.upstream = upstream
        var gateway = Gateway(
            store: store, upstream: upstream, auth: ClientAuth(tokens: tokens), admin: AdminAuth(token: adminToken), clock: clock, logger: logger)
        if let configPath {
            let keys = Self.keys
            gateway.reloader = ConfigReloader(path: configPath, environment: { keys }, store: store, cache: gateway.cache, clock: clock, logger: logger)
        }
        do {
            if let shared {
                gateway.persister = try await StatePersister.openShared(
                    url: try PostgresURL.parse(shared.url), replica: shared.replica, timeout: sharedTimeout, store: store, usage: gateway.usage, clock: clock,
                    logger: logger, activity: gateway.activity, every: .milliseconds(20))
            } else if let statePath {
                gateway.persister = try await StatePersister.open(
                    path: statePath, store: store, usage: gateway.usage, clock: clock, logger: logger, activity: gateway.activity,
                    every: .milliseconds(20))
            }
        } catch {
            // What was started so far must be stopped: a client dropped without shutdown traps.
            try? await upstream.shutdown()
            try? await fake.shutdown()
            throw error
        }
        persister = gateway.persister
        persisting = gateway.persister.map { p in Task { try await p.run() } }
        self.gateway = gateway
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = gateway.application(host: "127.0.0.1", port: 0) { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        self.group = group
        server = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        port = await iterator.next() ?? 0
        // Enough connections that a thousand requests at once do not wait out the pool's timeout (under TSan too).
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.timeout = .init(connect: .seconds(60), read: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func stop() async {
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await server.value
        persisting?.cancel()
        _ = try? await persisting?.value
        try? await upstream.shutdown()
        try? await fake.shutdown()
        if let configPath { try? FileManager.default.removeItem(atPath: configPath) }
    }

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: String

        func header(_ name: String) -> String? { headers.first(name: name) }
        var events: [String] {
            body.components(separatedBy: "\n\n").compactMap { block in
                block.split(separator: "\n").first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
            }
        }
    }

    func post(_ body: String, headers: [(String, String)] = [], path: String = "/v1/chat/completions") async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }

    func keyState(_ label: String) -> String {
        let snapshot = store.snapshot
        let key = snapshot.table.key(labelled: label)!
        return snapshot.health.keyState(key.id, at: clock.now()).state.name
    }

    /// Requests the fake saw per key label since `since` (an index into its log).
    func upstreamRequests() -> [FakeLogEntry] { fake.log().requests }
}

func chat(_ prompt: String = "hello", model: String = "auto", stream: Bool = false, maxTokens: Int? = nil) -> String {
    var fields = [#""model":"\#(model)""#, #""messages":[{"role":"user","content":"\#(prompt)"}]"#]
    if stream { fields.append(#""stream":true"#) }
    if let maxTokens { fields.append(#""max_tokens":\#(maxTokens)"#) }
    return "{" + fields.joined(separator: ",") + "}"
}

/// The answer FakeUpstream gives to a one-message prompt.
func expectedAnswer(_ prompt: String, tokens: Int = 16) -> String {
    FakeAnswer.text(for: "user:\(prompt)", count: tokens)
}

func withHarness(
    config: String = Harness.config, script: String = "", tokens: Set<String> = [], reloadable: Bool = false, adminToken: String? = nil,
    statePath: String? = nil, shared: (url: String, replica: String)? = nil, sharedTimeout: Duration = .milliseconds(50),
    logs: LogCapture? = nil, edit: (inout RoutingTable) -> Void = { _ in }, _ body: (Harness) async throws -> Void
) async throws {
    let harness = try await Harness(
        config: config, script: script, tokens: tokens, reloadable: reloadable, adminToken: adminToken, statePath: statePath, shared: shared,
        sharedTimeout: sharedTimeout, logs: logs, edit: edit)
    do {
        try await body(harness)
    } catch {
        await harness.stop()
        throw error
    }
    await harness.stop()
}

/// Keeps every log line (message and metadata) a test's gateway writes, at every level.
///
/// A value, as a `LogHandler` should be: each `Logger` copy (libraries set metadata on theirs) has its own
/// metadata, and only the kept lines are shared, under a lock.
struct LogCapture: LogHandler {
    private let lines = Locked<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// How much slower this test process runs than a plain debug build: ThreadSanitizer (found by its runtime's
/// symbol) stretches everything 5-15x, AddressSanitizer 2-3x, so wall-clock bounds that prove "did not wait
/// for X" scale with them.
let timingScale: Double = dlsym(nil, "__tsan_init") != nil ? 6 : dlsym(nil, "__asan_init") != nil ? 3 : 1
