import ArgumentParser
import FakeUpstream
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import SwitchyardCore
import SwitchyardGateway

/// `switchyard serve`: run the gateway.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway. --demo starts the bundled fake upstream behind every provider, so it works with no keys."
    )

    @Option(name: .long, help: "The routing table.")
    var config: String = "routes.yaml"

    @Option(name: .long, help: "HOST:PORT to listen on (default: server.listen of the table).")
    var listen: String?

    @Flag(name: .long, help: "Serve with the in-process fake upstream and fake keys.")
    var demo = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
            return handler
        }
        // Request lines that event loops hold for a shared write go out before the process ends.
        defer { LineLogHandler.flushHeldLines() }
        let logger = Logger(label: "switchyard")
        let environment = ProcessInfo.processInfo.environment
        var table: RoutingTable
        do {
            table = try ConfigLoader(environment: environment, placeholderKeys: demo).load(path: config)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        var fake: FakeUpstreamServer?
        if demo {
            let (demoTable, server) = try await DemoUpstream.start(table)
            table = demoTable
            fake = server
            logger.notice("demo: every provider points at the bundled fake upstream \(server.baseURL) with fake keys")
        } else {
            for warning in table.warnings { logger.warning("\(warning)") }
        }
        guard var address = HostPort(listen ?? table.server.listen) else {
            throw ValidationError("--listen must be HOST:PORT")
        }
        let auth = demo ? ClientAuth(tokens: []) : ClientAuth.fromEnvironment(table, environment: environment)
        if auth.isOpen && !address.isLoopback {
            logger.warning("no client tokens configured (\(table.server.clientTokensEnv ?? "client_tokens_env")): binding 127.0.0.1 only")
            address.host = "127.0.0.1"
        } else if auth.isOpen {
            logger.notice("no client tokens configured: open to loopback clients only")
        }
        let store = SnapshotStore(RoutingSnapshot(table: table, now: SystemClock().now()))
        let upstream = UpstreamClient(connectTimeout: table.retry.connectTimeout, readTimeout: table.retry.attemptTimeout)
        let admin = AdminAuth.fromEnvironment(table, environment: environment)
        var gateway = Gateway(store: store, upstream: upstream, auth: auth, admin: admin, logger: logger)
        // The demo's fake keys and answers are not worth keeping.
        if !demo, let shared = table.shared, let url = shared.url {
            let replica = shared.replica ?? "\(ProcessInfo.processInfo.hostName):\(address.port)"
            do {
                gateway.persister = try await StatePersister.openShared(
                    url: url, replica: replica, timeout: shared.timeout, store: store, usage: gateway.usage, clock: SystemClock(), logger: logger, activity: gateway.activity)
            } catch {
                // The message names the URL with its password masked, never the password.
                printError("cannot open the shared store \(url) (\(shared.postgresURLEnv)): \(error)")
                throw ExitCode(1)
            }
        } else if !demo, let path = table.statePath {
            do {
                gateway.persister = try await StatePersister.open(
                    path: path, store: store, usage: gateway.usage, clock: SystemClock(), logger: logger, activity: gateway.activity)
            } catch {
                printError("cannot open the state file \(path): \(error)")
                throw ExitCode(1)
            }
        } else {
            logger.notice("state: kept in memory only (\(demo ? "demo" : "state: off"))")
        }
        // The demo's table is rewritten to point at the fake upstream, so it is not reloaded from the file.
        let reloader = demo ? nil : ConfigReloader(path: config, store: store, cache: gateway.cache, logger: logger)
        gateway.reloader = reloader
        let prober = KeyProber(store: store, upstream: upstream, clock: SystemClock(), logger: logger, activity: gateway.activity)
        if store.snapshot.table.providers.contains(where: \.checkKeys) {
            let removed = await prober.checkKeys()
            logger.notice("key check: \(removed.isEmpty ? "every key verified or kept" : "removed \(removed.joined(separator: ", "))")")
        }
        let host = address.host
        let app = gateway.application(host: host, port: address.port) { port in
            let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            logger.notice("switchyard listening on \(url)")
            print(
                """

                Try it:
                  curl -s \(url)/v1/chat/completions -H 'Content-Type: application/json' \\
                    -d '{"model":"auto","messages":[{"role":"user","content":"Hello, Switchyard!"}]}'

                """)
            // Out now, not when a pipe's buffer fills: scripts wait for this line to know the gateway listens.
            fflush(nil)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: UpstreamClientService(client: upstream)),
                    .init(service: prober),
                    .init(service: CatalogSync(store: store, upstream: upstream, clock: SystemClock(), logger: logger)),
                ] + (gateway.persister.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                    + (reloader.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                    .init(service: app),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        try await fake?.shutdown()
    }
}

/// `--demo`: the fake upstream in-process, every provider pointed at it, fake keys over the table's accounts.
enum DemoUpstream {
    static func start(_ table: RoutingTable) async throws -> (RoutingTable, FakeUpstreamServer) {
        var table = table
        var labels: [String: String] = [:]
        for i in table.keys.indices {
            let demoKey = "sk-demo-\(table.keys[i].label.replacingOccurrences(of: "#", with: "-"))-0000000000"
            table.keys[i].secret = Secret(demoKey)
            table.keys[i].isPlaceholder = false
            labels[demoKey] = table.keys[i].label
        }
        var models: [String: Int] = [:]
        for model in table.models { models[model.upstream] = model.context }
        let script = FakeScript(
            models: models, defaultBehavior: FakeBehavior(tokenInterval: .milliseconds(15), answerTokens: 24), keyLabels: labels)
        let server = try await FakeUpstreamServer.start(script: script, threads: 1)
        for i in table.providers.indices { table.providers[i].baseURL = server.baseURL }
        table.warnings = []
        table.unsetKeys = []
        return (table, server)
    }

}
