import Foundation
import Yams

/// Builds the table section by section (providers, routes and the policies in the extensions beside this file);
/// every problem goes to the reader.
struct TableBuilder {
    let reader: NodeReader
    let environment: [String: String]
    let directory: String?
    let placeholderKeys: Bool
    let unset = UnsetKeys()

    /// Collects unset keys while providers are read.
    final class UnsetKeys {
        var keys: [UnsetKey] = []
    }

    static let topFields = ["env_file", "state", "shared", "server", "providers", "models", "routes", "routing", "health", "retry", "cache"]

    func build(_ root: Node) -> RoutingTable? {
        guard let top = reader.fields(root, "", allowed: Self.topFields) else { return nil }
        var envFilePath: String?
        var fileVariables: [String: String] = [:]
        if let node = top["env_file"], let name = reader.string(node, "env_file") {
            envFilePath = name
            fileVariables = readEnvFile(name, node: node)
        }
        let lookup: (String) -> String? = { name in
            if let value = environment[name], !value.isEmpty { return value }
            if let value = fileVariables[name], !value.isEmpty { return value }
            return nil
        }

        let server = top["server"].map { readServer($0) } ?? ServerSettings()
        var providers: [Provider] = []
        var accounts: [Account] = []
        var keys: [APIKey] = []
        if let node = top.required("providers"), let entries = reader.entries(node, "providers") {
            if entries.isEmpty { reader.error(node, "providers", "declare at least one provider") }
            for (name, _, value) in entries {
                readProvider(name, value, lookup: lookup, providers: &providers, accounts: &accounts, keys: &keys)
            }
        }
        var models: [Model] = []
        if let node = top.required("models"), let entries = reader.entries(node, "models") {
            if entries.isEmpty { reader.error(node, "models", "declare at least one model") }
            for (name, _, value) in entries {
                if let model = readModel(name, value, id: models.count, providers: providers) { models.append(model) }
            }
        }
        var routes: [Route] = []
        if let node = top.required("routes"), let entries = reader.entries(node, "routes") {
            if entries.isEmpty { reader.error(node, "routes", "declare at least one route") }
            for (name, keyNode, value) in entries {
                if models.contains(where: { $0.name == name }) {
                    reader.warn(keyNode, "routes.\(name)", "a model has the same name; requests for '\(name)' use the route")
                }
                if let route = readRoute(name, value, models: models) { routes.append(route) }
            }
        }
        var routing = RoutingSettings()
        if let node = top["routing"], let f = reader.fields(node, "routing", allowed: ["default_output_tokens", "context_margin", "key_selection"]) {
            f.assign("default_output_tokens", to: &routing.defaultOutputTokens) { reader.int($0, $1, in: 1...1_000_000) }
            f.assign("context_margin", to: &routing.contextMargin) { reader.fraction($0, $1, in: 0...0.5) }
            f.assign("key_selection", to: &routing.keySelection) { node, path in
                let known = RoutingSettings.KeySelection.allCases.map(\.rawValue).joined(separator: " or ")
                guard let text = reader.scalar(node, path, expected: known) else { return nil }
                guard let selection = RoutingSettings.KeySelection(rawValue: text) else {
                    reader.error(node, path, "'\(text)' is not \(known)")
                    return nil
                }
                return selection
            }
        }
        let health = top["health"].map { readHealth($0) } ?? HealthSettings()
        let retry = top["retry"].map { readRetry($0) } ?? RetrySettings()
        let cache = top["cache"].map { readCache($0) } ?? CacheSettings()
        var table = RoutingTable(
            source: reader.file, envFile: envFilePath, server: server, providers: providers, accounts: accounts, keys: keys,
            models: models, routes: routes, routing: routing, health: health, retry: retry, cache: cache, warnings: [])
        table.unsetKeys = unset.keys
        table.statePath = readStatePath(top["state"])
        table.shared = top["shared"].flatMap { readShared($0, lookup: lookup) }
        return table
    }

    // MARK: shared state

    /// `shared: { postgres_url_env: NAME, replica: NAME, timeout: 50ms }`. With the variable unset it warns and
    /// nothing is shared; a URL that cannot be read is an error that names the variable, never its value.
    func readShared(_ node: Node, lookup: (String) -> String?) -> SharedSettings? {
        guard let f = reader.fields(node, "shared", allowed: ["postgres_url_env", "replica", "timeout"]) else { return nil }
        var shared = SharedSettings()
        f.assign("postgres_url_env", to: &shared.postgresURLEnv) { variableName($0, $1) }
        f.assign("replica", to: &shared.replica) { reader.string($0, $1) }
        f.assign("timeout", to: &shared.timeout) { reader.duration($0, $1) }
        guard let text = lookup(shared.postgresURLEnv) else {
            reader.warn(f["postgres_url_env"] ?? node, "shared.postgres_url_env", "\(shared.postgresURLEnv) is not set; state stays in this process (not shared)")
            return shared
        }
        do {
            shared.url = try PostgresURL.parse(text)
        } catch {
            reader.error(f["postgres_url_env"] ?? node, "shared.postgres_url_env", "\(shared.postgresURLEnv): \(error.description)")
        }
        return shared
    }

    // MARK: state

    /// Where health and usage are kept across restarts: `state: PATH` (beside the routes file when relative),
    /// `state: off`, or by default `switchyard-state.sqlite` beside the routes file.
    func readStatePath(_ node: Node?) -> String? {
        guard let node else { return directory.map { ConfigLoader.resolve(RoutingTable.defaultStateFile, in: $0) } }
        guard let text = reader.string(node, "state") else { return nil }
        if text == "off" || text.isEmpty { return nil }
        guard let directory else { return text.hasPrefix("/") ? text : nil }
        return ConfigLoader.resolve(text, in: directory)
    }

    // MARK: env file

    func readEnvFile(_ name: String, node: Node) -> [String: String] {
        guard let directory else { return [:] }
        let path = ConfigLoader.resolve(name, in: directory)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            reader.warn(node, "env_file", "cannot read \(path); keys are taken from the environment only")
            return [:]
        }
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & 0o044 != 0 {
            reader.warn(node, "env_file", "\(path) is readable by other users; restrict it with chmod 600")
        }
        let (entries, problems) = DotEnv.parse(text)
        for problem in problems {
            reader.append(ConfigProblem(file: path, line: problem.line, column: nil, path: "", message: problem.message, severity: .warning))
        }
        var values: [String: String] = [:]
        for entry in entries { values[entry.name] = entry.value }
        return values
    }

    // MARK: server

    func readServer(_ node: Node) -> ServerSettings {
        var server = ServerSettings()
        guard
            let f = reader.fields(
                node, "server", allowed: ["listen", "client_tokens_env", "admin_token_env", "max_body_bytes", "max_in_flight", "idle_timeout",
                    "request_read_timeout", "client_requests_per_minute",
                ])
        else {
            return server
        }
        f.assign("listen", to: &server.listen) { node, path in
            guard let text = reader.string(node, path) else { return nil }
            guard HostPort(text) != nil else {
                reader.error(node, path, "'\(text)' is not HOST:PORT")
                return nil
            }
            return text
        }
        f.assign("client_tokens_env", to: &server.clientTokensEnv) { variableName($0, $1) }
        f.assign("admin_token_env", to: &server.adminTokenEnv) { variableName($0, $1) }
        f.assign("max_body_bytes", to: &server.maxBodyBytes) { reader.byteSize($0, $1) }
        f.assign("max_in_flight", to: &server.maxInFlight) { reader.int($0, $1, in: 1...10_000_000) }
        f.assign("idle_timeout", to: &server.idleTimeout) { reader.duration($0, $1) }
        f.assign("request_read_timeout", to: &server.requestReadTimeout) { reader.duration($0, $1) }
        server.clientRequestsPerMinute = f.read("client_requests_per_minute") { r in { r.int($0, $1, in: 1...10_000_000) } }
        return server
    }

    func variableName(_ node: Node, _ path: String) -> String? {
        guard let text = reader.string(node, path) else { return nil }
        guard DotEnv.isVariableName(text) else {
            reader.error(node, path, "must name an environment variable (LIKE_THIS); key values never go in routes.yaml")
            return nil
        }
        return text
    }
}
