import FakeUpstream
import Foundation
import Logging
import SwitchyardCore
import SwitchyardGateway

#if canImport(Glibc)
import Glibc
#endif

/// What a scenario runs against: the fake upstream (in-process) and the gateway (a child process built from
/// this package, or one already running when `--gateway` is given).
final class BenchEnvironment: @unchecked Sendable {
    let fake: any UpstreamControl
    private let ownedFake: FakeUpstreamServer?
    let gatewayURL: String
    let process: Process?
    let logPath: String
    let directory: URL
    /// The health disable window the bench's routing table sets; scenarios time themselves by it.
    let disableFor: Double
    /// The routes file of a gateway bench started (nil for --gateway), rewritten to retune it mid-run.
    private(set) var configPath: String?
    /// The in-process gateway, when there is one.
    private var inProcess: GatewayLauncher.InProcess?

    /// Keys the bench's routing table uses; the fake's log names them by these labels.
    static let keys = (1...4).map { "sk-or-v1-bench-key-000000000000000\($0)" }
    static let labels = (1...4).map { "openrouter#\($0)" }
    /// The per-account limit the account scenario declares (and has the fake upstream enforce).
    static let accountRequestsPerMinute = 60

    static func config(baseURL: String, listen: String, disableFor: Double, accountLimit: Int? = nil, persist: Bool = true) -> String {
        """
        server: { listen: \(listen), max_body_bytes: 4MB }
        state: \(persist ? "switchyard-state.sqlite" : "off")
        providers:
          openrouter:
            base_url: \(baseURL)
            kind: openrouter
            keys:
              - { env: BENCH_KEY_1, account: main }
              - { env: BENCH_KEY_2, account: main }
              - { env: BENCH_KEY_3, account: spare }
              - { env: BENCH_KEY_4, account: spare }
        \(accountLimit.map { "    account_limits: { requests_per_minute: \($0) }" } ?? "")
        models:
          fast-8k:  { provider: openrouter, upstream: "meta-llama/llama-3.1-8b-instruct:free", context: 8192, speed: 5, quality: 3, prefill: true }
          other-8k: { provider: openrouter, upstream: "google/gemma-2-9b-it:free", context: 8192, speed: 4, quality: 3, prefill: true }
          long:     { provider: openrouter, upstream: "microsoft/phi-3-mini-128k-instruct:free", context: 128000, speed: 2, quality: 3, prefill: true }
        routes:
          auto: { prefer: speed, models: [fast-8k, other-8k, long] }
        health:
          min_requests: 10
          window: 10s
          disable_for: \(Int(disableFor * 1000))ms
          max_disable_for: \(Int(disableFor * 4000))ms
          consecutive_failures_to_cool: 3
          cooldown: \(Int(disableFor * 1000))ms
          rate_limit_cooldown: 5s
          model_cooldown: 5s
        retry:
          max_attempts: 6
          backoff: [0s, 10ms, 20ms]
          first_token_timeout: 2s
          stream_idle_timeout: 1s
          attempt_timeout: 10s
          request_deadline: 30s
        cache: { scope: shared, ttl: 5m, max_entries: 100000, max_bytes: 256MB }
        """
    }

    /// Whether bench started the fake upstream itself (not `--gateway`): only then can it start more gateways on it.
    var ownsFakeUpstream: Bool { ownedFake != nil }

    /// Whether the gateway bench starts keeps its state file (`--state off` measures without it).
    private(set) var persist = true

    private init(fake: FakeUpstreamServer?, remote: String? = nil, gatewayURL: String, process: Process?, logPath: String, directory: URL, disableFor: Double) {
        self.ownedFake = fake
        self.fake = fake.map { InProcessUpstream(server: $0) } ?? RemoteUpstream(root: remote ?? "")
        self.gatewayURL = gatewayURL
        self.process = process
        self.logPath = logPath
        self.directory = directory
        self.disableFor = disableFor
    }

    /// - Parameters:
    ///   - external: a gateway already running; nil starts one.
    ///   - inProcess: run the gateway inside this process (for tests; the child process is the fairer measure,
    ///     since its CPU time is its own and it does not share threads with the load generator).
    static func start(
        gateway external: String?, upstream remote: String? = nil, fakeThreads: Int, inProcess: Bool = false, disableFor: Double = 5,
        persist: Bool = true
    ) async throws -> BenchEnvironment {
        var labels: [String: String] = [:]
        for (key, label) in zip(keys, Self.labels) { labels[key] = label }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let logPath = directory.appendingPathComponent("gateway.log").path
        if let external {
            guard let remote else { throw BenchError("--gateway needs --upstream: the fake upstream that gateway routes to (see bench --print-config)") }
            let root = remote.hasSuffix("/v1") ? String(remote.dropLast(3)) : remote
            let env = BenchEnvironment(fake: nil, remote: root, gatewayURL: external, process: nil, logPath: logPath, directory: directory, disableFor: disableFor)
            try env.fake.updateBehavior("key_labels: {" + labels.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}")
            return env
        }
        let fake = try await FakeUpstreamServer.start(script: FakeScript(keyLabels: labels), threads: fakeThreads)
        var keyEnvironment: [String: String] = [:]
        for (i, key) in keys.enumerated() { keyEnvironment["BENCH_KEY_\(i + 1)"] = key }
        if inProcess {
            let configPath = directory.appendingPathComponent("routes.yaml").path
            try config(baseURL: fake.baseURL, listen: "127.0.0.1:0", disableFor: disableFor, persist: persist).write(toFile: configPath, atomically: true, encoding: .utf8)
            let launched = try await GatewayLauncher.inProcess(configPath: configPath, keyEnvironment: keyEnvironment)
            let env = BenchEnvironment(
                fake: fake, gatewayURL: launched.url, process: nil, logPath: logPath, directory: directory, disableFor: disableFor)
            env.inProcess = launched.parts
            env.configPath = configPath
            env.persist = persist
            return env
        }
        let port = try freePort()
        let configPath = directory.appendingPathComponent("routes.yaml").path
        try config(baseURL: fake.baseURL, listen: "127.0.0.1:\(port)", disableFor: disableFor, persist: persist).write(toFile: configPath, atomically: true, encoding: .utf8)
        guard let binary = GatewayLauncher.binary else {
            warn("note: no gateway binary at \(GatewayLauncher.binaryPath); running the gateway in-process, so its CPU time cannot be told apart.")
            warn("      For the fair measure: swift build -c release --product switchyard, then run bench again.")
            try await fake.shutdown()
            return try await start(gateway: nil, upstream: nil, fakeThreads: fakeThreads, inProcess: true, disableFor: disableFor, persist: persist)
        }
        let url = "http://127.0.0.1:\(port)"
        let process = try await GatewayLauncher.spawn(binary: binary, configPath: configPath, keyEnvironment: keyEnvironment, logPath: logPath, url: url)
        let env = BenchEnvironment(fake: fake, gatewayURL: url, process: process, logPath: logPath, directory: directory, disableFor: disableFor)
        env.configPath = configPath
        env.persist = persist
        return env
    }

    /// Starts another gateway for one scenario, with a routing table of its own, the way this environment runs
    /// its gateway (a child process, or in-process for the tests). Nil when bench measures a gateway it did not
    /// start (`--gateway`): the scenario then uses that one.
    func startScenarioGateway(name: String, config: (_ listen: String) -> String, keyEnvironment: [String: String]) async throws -> ScenarioGateway? {
        guard ownedFake != nil else { return nil }
        if process != nil, let spawned = try await spawnScenarioGateway(name: name, config: config, keyEnvironment: keyEnvironment) {
            return spawned
        }
        let folder = try scenarioFolder(name)
        let configPath = folder.appendingPathComponent("routes.yaml").path
        try config("127.0.0.1:0").write(toFile: configPath, atomically: true, encoding: .utf8)
        let launched = try await GatewayLauncher.inProcess(configPath: configPath, keyEnvironment: keyEnvironment)
        return ScenarioGateway(url: launched.url, logPath: folder.appendingPathComponent("gateway.log").path, process: nil, inProcess: launched.parts)
    }

    /// Starts another gateway for one scenario as a child process of the `switchyard` binary, however this
    /// environment runs its own: a scenario of several replicas needs processes, since an in-process gateway
    /// keeps no shared store. Nil when bench did not start the fake upstream (`--gateway`) or the binary is missing.
    func spawnScenarioGateway(name: String, config: (_ listen: String) -> String, keyEnvironment: [String: String]) async throws -> ScenarioGateway? {
        guard ownedFake != nil, let binary = GatewayLauncher.binary else { return nil }
        let folder = try scenarioFolder(name)
        let configPath = folder.appendingPathComponent("routes.yaml").path
        let logPath = folder.appendingPathComponent("gateway.log").path
        let port = try freePort()
        try config("127.0.0.1:\(port)").write(toFile: configPath, atomically: true, encoding: .utf8)
        let url = "http://127.0.0.1:\(port)"
        let process = try await GatewayLauncher.spawn(binary: binary, configPath: configPath, keyEnvironment: keyEnvironment, logPath: logPath, url: url)
        return ScenarioGateway(url: url, logPath: logPath, process: process, inProcess: nil)
    }

    /// A folder of its own for one scenario's gateway: its routes file and log.
    private func scenarioFolder(_ name: String) throws -> URL {
        let folder = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Rewrites the gateway's routes file with an account limit (nil removes it) and reloads it.
    func setAccountLimit(_ perMinute: Int?) throws {
        guard let configPath else { throw BenchError("the account scenario retunes the gateway's routes file; it needs a gateway bench started") }
        let port = URL(string: gatewayURL)?.port ?? 0
        let listen = process == nil ? "127.0.0.1:0" : "127.0.0.1:\(port)"
        try Self.config(baseURL: fake.baseURL, listen: listen, disableFor: disableFor, accountLimit: perMinute, persist: persist)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let (status, body) = try HTTP.post(gatewayURL + "/admin/reload", "")
        guard status == 200 else { throw BenchError("reload failed: \(status) \(body)") }
    }

    func stop() async {
        if let process {
            process.terminate()
            process.waitUntilExit()
        }
        if let inProcess { await inProcess.stop() }
        try? await ownedFake?.shutdown()
    }

    /// The gateway process's CPU time in microseconds (utime + stime from /proc), nil for an external gateway.
    func gatewayCPUMicros() -> UInt64? {
        process.flatMap { processCPUMicros($0.processIdentifier) }
    }

    /// Keys the gateway disabled for their error rate since `logOffset` (a position in its log), read from its
    /// health state when it runs in-process, else from its log.
    func keysDisabled(sinceLogOffset logOffset: Int) -> Int {
        if let inProcess {
            let snapshot = inProcess.store.snapshot
            let now = SystemClock().now()
            return snapshot.table.keys.filter { snapshot.health.keyState($0.id, at: now).state.name == "disabled" }.count
        }
        let text = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").dropFirst(logOffset)
        return Set(text.split(separator: "\n").filter { $0.contains("health change") && $0.contains("to=disabled") }.compactMap { line -> String? in
            guard let r = line.range(of: "subject=") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != " " })
        }).count
    }

    var logSize: Int { (try? String(contentsOfFile: logPath, encoding: .utf8))?.count ?? 0 }

    /// Health state changes the gateway logged for `subject` (label), with the state entered and its expiry.
    func healthChanges(subject: String) -> [(to: String, until: Date?, at: Date)] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        var out: [(String, Date?, Date)] = []
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        for line in text.split(separator: "\n") where line.contains("health change") && line.contains("subject=\(subject) ") {
            func field(_ name: String) -> String? {
                guard let r = line.range(of: " \(name)=") else { return nil }
                return String(line[r.upperBound...].prefix { $0 != " " })
            }
            let at = plain.date(from: String(line.prefix(24))) ?? Date()
            out.append((field("to") ?? "", field("until").flatMap { iso.date(from: $0) }, at))
        }
        return out
    }
}

/// A gateway started for one scenario (see `BenchEnvironment.startScenarioGateway`).
final class ScenarioGateway: @unchecked Sendable {
    let url: String
    /// Its log, when it runs as a child process.
    let logPath: String
    private let process: Process?
    private let inProcess: GatewayLauncher.InProcess?

    init(url: String, logPath: String, process: Process?, inProcess: GatewayLauncher.InProcess?) {
        self.url = url
        self.logPath = logPath
        self.process = process
        self.inProcess = inProcess
    }

    func stop() async {
        if let process {
            process.terminate()
            process.waitUntilExit()
        }
        await inProcess?.stop()
    }
}

/// Starts the gateway under test: a child process of the `switchyard` binary built beside bench, or in-process.
enum GatewayLauncher {
    struct InProcess {
        var store: SnapshotStore
        var upstream: UpstreamClient
        var server: Task<Void, any Error>

        func stop() async {
            server.cancel()
            _ = try? await server.value
            try? await upstream.shutdown()
        }
    }

    static var binaryPath: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchyard").path
    }

    /// The `switchyard` binary beside bench, when it was built.
    static var binary: String? { FileManager.default.isExecutableFile(atPath: binaryPath) ? binaryPath : nil }

    /// Runs `switchyard serve --config configPath` with the keys in its environment, its output to `logPath`,
    /// and waits until `url` answers `/healthz`.
    static func spawn(binary: String, configPath: String, keyEnvironment: [String: String], logPath: String, url: String) async throws -> Process {
        let process = Process()
        let command = CPUPinning.command(binary, ["serve", "--config", configPath])
        process.executableURL = URL(fileURLWithPath: command.executable)
        process.arguments = command.arguments
        var env = ProcessInfo.processInfo.environment.merging(keyEnvironment) { $1 }
        env["LOG_LEVEL"] = env["LOG_LEVEL"] ?? "info"
        process.environment = env
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        for _ in 0..<100 {
            if (try? HTTP.get(url + "/healthz").status) == 200 { return process }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.terminate()
        throw BenchError("the gateway did not start; see \(logPath)")
    }

    /// Serves the routes file in this process on an ephemeral port (for the tests).
    static func inProcess(configPath: String, keyEnvironment: [String: String]) async throws -> (url: String, parts: InProcess) {
        let table = try ConfigLoader(environment: keyEnvironment).load(path: configPath)
        let store = SnapshotStore(RoutingSnapshot(table: table, now: SystemClock().now()))
        let upstream = UpstreamClient(readTimeout: .seconds(30))
        let logger = Logger(label: "bench-gateway", factory: { _ in SwiftLogNoOpLogHandler() })
        var gateway = Gateway(store: store, upstream: upstream, auth: ClientAuth(tokens: []), logger: logger)
        let keys = keyEnvironment
        gateway.reloader = ConfigReloader(path: configPath, environment: { keys }, store: store, cache: gateway.cache, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = Task { try await gateway.serve(host: "127.0.0.1", port: 0) { continuation.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        return ("http://127.0.0.1:\(port)", InProcess(store: store, upstream: upstream, server: server))
    }
}

/// Tiny blocking HTTP helpers on libcurl's easy interface, for control calls outside the measured path.
enum HTTP {
    static func get(_ url: String) throws -> (status: Int, body: String) { try request(url, body: nil) }
    static func post(_ url: String, _ body: String) throws -> (status: Int, body: String) { try request(url, body: body) }

    private static func request(_ url: String, body: String?) throws -> (status: Int, body: String) {
        let generator = LoadGenerator(connections: 1)
        var result: LoadResult?
        let request = LoadRequest(url: url, body: Array((body ?? "").utf8), keepBody: true, get: body == nil)
        var sent = false
        generator.runClosed(until: Clock.now() + 10_000_000_000, next: {
            guard !sent else { return nil }
            sent = true
            return request
        }, done: { result = $0 })
        guard let result, result.error == nil else { throw BenchError("\(url): \(result?.error ?? "no answer")") }
        return (result.status, String(decoding: result.body, as: UTF8.self))
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw BenchError("no free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
