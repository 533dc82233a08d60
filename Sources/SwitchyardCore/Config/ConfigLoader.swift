import Foundation
import Yams

/// Turns routes.yaml (plus its env file and the environment) into a `RoutingTable`,
/// or a `ConfigError` listing every problem with file:line:column and field path.
public struct ConfigLoader: Sendable {
    /// The process environment; key variables are read from here first, then from `env_file`.
    public var environment: [String: String]
    /// Gives each unset key variable a placeholder key, so routing can be shown before keys exist.
    public var placeholderKeys = false

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, placeholderKeys: Bool = false) {
        self.environment = environment
        self.placeholderKeys = placeholderKeys
    }

    /// Loads a file; `env_file` is resolved relative to the file's directory.
    public func load(path: String) throws(ConfigError) -> RoutingTable {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [
                ConfigProblem(file: path, line: nil, column: nil, path: "", message: "cannot read the file (\(Self.reason(error)))")
            ])
        }
        return try parse(yaml: text, file: path, directory: Self.directory(of: path))
    }

    /// Where `env_file` is read from for a routes file at `configPath` (relative names sit beside it);
    /// the reloader watches the same path.
    public static func envFilePath(_ envFile: String, configPath: String) -> String {
        resolve(envFile, in: directory(of: configPath))
    }

    static func directory(of path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }

    static func resolve(_ envFile: String, in directory: String) -> String {
        envFile.hasPrefix("/") ? envFile : "\(directory)/\(envFile)"
    }

    /// Parses YAML text. `directory` anchors a relative `env_file`; nil ignores `env_file`.
    public func parse(yaml: String, file: String, directory: String?) throws(ConfigError) -> RoutingTable {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(problems: [Self.problem(from: error, file: file)])
        } catch {
            throw ConfigError(problems: [ConfigProblem(file: file, line: nil, column: nil, path: "", message: "\(error)")])
        }
        guard let root else {
            throw ConfigError(problems: [ConfigProblem(file: file, line: nil, column: nil, path: "", message: "the file is empty")])
        }
        let reader = NodeReader(file: file)
        let builder = TableBuilder(reader: reader, environment: environment, directory: directory, placeholderKeys: placeholderKeys)
        let table = builder.build(root)
        let errors = reader.problems.filter { $0.severity == .error }
        guard errors.isEmpty, var table else {
            throw ConfigError(problems: errors.isEmpty ? reader.problems : errors)
        }
        table.warnings = reader.problems.filter { $0.severity == .warning }
        return table
    }

    static func problem(from error: YamlError, file: String) -> ConfigProblem {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) " } ?? ""
            return ConfigProblem(file: file, line: mark.line, column: mark.column, path: "", message: "YAML syntax: \(detail)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigProblem(
                file: file, line: context.mark.line, column: context.mark.column, path: "",
                message: "duplicate keys: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigProblem(file: file, line: nil, column: nil, path: "", message: "YAML: \(error)")
        }
    }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}

/// Builds the table section by section; every problem goes to the reader.
private struct TableBuilder {
    let reader: NodeReader
    let environment: [String: String]
    let directory: String?
    let placeholderKeys: Bool
    private let unset = UnsetKeys()

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

    // MARK: providers and keys

    static let providerFields = ["base_url", "kind", "keys", "keys_env", "account_limits", "sync_catalog", "check_keys", "http2", "headers"]
    static let secretFieldNames = ["key", "api_key", "apikey", "value", "secret", "token"]

    func readProvider(
        _ name: String, _ node: Node, lookup: (String) -> String?,
        providers: inout [Provider], accounts: inout [Account], keys: inout [APIKey]
    ) {
        let path = "providers.\(name)"
        guard let f = reader.fields(node, path, allowed: Self.providerFields) else { return }
        let providerID = providers.count
        var baseURL = ""
        if let urlNode = f.required("base_url"), let url = reader.string(urlNode, f.path("base_url")) {
            if url.contains(where: \.isWhitespace) || !HeaderText.isValue(url) {
                reader.error(urlNode, f.path("base_url"), "must not contain spaces or control characters")
            } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
                baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
            } else {
                reader.error(urlNode, f.path("base_url"), "'\(url)' must start with http:// or https://")
            }
        }
        let kind = f.read("kind") { r in { r.choice($0, $1, of: ProviderKind.self) } } ?? ProviderKind.infer(fromBaseURL: baseURL)
        var perMinute: Int?
        var perDay: Int?
        if let limitsNode = f["account_limits"],
            let limits = reader.fields(limitsNode, f.path("account_limits"), allowed: ["requests_per_minute", "requests_per_day"])
        {
            perMinute = limits.read("requests_per_minute") { r in { r.int($0, $1, in: 1...1_000_000_000) } }
            perDay = limits.read("requests_per_day") { r in { r.int($0, $1, in: 1...1_000_000_000) } }
        }
        var headers: [(String, String)] = []
        if let headersNode = f["headers"], let entries = reader.entries(headersNode, f.path("headers")) {
            for (header, _, value) in entries {
                let headerPath = NodeReader.join(f.path("headers"), header)
                if header.lowercased() == "authorization" {
                    reader.error(value, headerPath, "the Authorization header is built from the provider's keys; remove it")
                    continue
                }
                guard HeaderText.isName(header) else {
                    reader.error(value, headerPath, "'\(header)' is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)")
                    continue
                }
                guard let text = reader.string(value, headerPath) else { continue }
                guard HeaderText.isValue(text) else {
                    reader.error(value, headerPath, "a header's value must not contain a line break or another control character")
                    continue
                }
                headers.append((header, text))
            }
        }

        // Key declarations in order; each declared position gets a stable label even if its variable is unset.
        var declared: [(env: String, account: String?, node: Node, perMinute: Int?, perDay: Int?)] = []
        if let keysNode = f["keys"], let items = reader.list(keysNode, f.path("keys")) {
            for item in items {
                if let decl = readKeyDeclaration(item.node, item.path) { declared.append((decl.env, decl.account, item.node, decl.perMinute, decl.perDay)) }
            }
        }
        if let shorthand = f["keys_env"], let items = reader.list(shorthand, f.path("keys_env")) {
            for item in items {
                if let env = variableName(item.node, item.path) { declared.append((env, nil, item.node, nil, nil)) }
            }
        }
        if f["keys"] == nil && f["keys_env"] == nil {
            reader.error(node, path, "declare its keys with `keys:` or `keys_env:`")
        }

        var providerKeys: [KeyID] = []
        var providerAccounts: [AccountID] = []
        var accountByName: [String: AccountID] = [:]
        for (position, decl) in declared.enumerated() {
            let label = "\(name)#\(position + 1)"
            let found = lookup(decl.env)
            if found == nil {
                unset.keys.append(UnsetKey(provider: providerID, label: label, env: decl.env))
                if !placeholderKeys {
                    reader.warn(decl.node, path, "\(decl.env) is not set (environment or env_file); \(label) is left out")
                    continue
                }
            }
            let value = found ?? "unset-\(decl.env)"
            guard HeaderText.isValue(value) else {
                // Sent as `Authorization: Bearer <key>`: a line break would end the header. Often a key file's newline.
                reader.error(decl.node, path, "\(label): \(decl.env) holds a line break or another control character; set it to the key alone")
                continue
            }
            if found != nil, let prefix = kind.keyPrefix, !value.hasPrefix(prefix) {
                reader.warn(decl.node, path, "\(label) (\(Secret(value).masked)) does not start with '\(prefix)' as \(kind.rawValue) keys do")
            }
            if let twin = keys.first(where: { $0.secret.value == value }) {
                reader.warn(decl.node, path, "\(label) has the same value as \(twin.label)")
            }
            let accountName = decl.account ?? decl.env
            let accountID: AccountID
            if let existing = accountByName[accountName] {
                accountID = existing
            } else {
                accountID = accounts.count
                accountByName[accountName] = accountID
                accounts.append(
                    Account(id: accountID, provider: providerID, name: "\(name)/\(accountName)", keys: [],
                            requestsPerMinute: perMinute, requestsPerDay: perDay))
                providerAccounts.append(accountID)
            }
            let keyID = keys.count
            keys.append(
                APIKey(id: keyID, provider: providerID, account: accountID, label: label, env: decl.env, secret: Secret(value),
                       isPlaceholder: found == nil, requestsPerMinute: decl.perMinute, requestsPerDay: decl.perDay))
            accounts[accountID].keys.append(keyID)
            providerKeys.append(keyID)
        }
        providers.append(
            Provider(
                id: providerID, name: name, kind: kind, baseURL: baseURL, headers: headers, keys: providerKeys,
                accounts: providerAccounts,
                syncCatalog: f.read("sync_catalog") { r in { r.bool($0, $1) } } ?? false,
                checkKeys: f.read("check_keys") { r in { r.bool($0, $1) } } ?? false,
                http2: f.read("http2") { r in { r.bool($0, $1) } } ?? false))
    }

    /// A key's own quota, when `requests_per_minute` / `requests_per_day` are given beside its `env`.
    struct KeyDeclaration {
        var env: String
        var account: String?
        var perMinute: Int?
        var perDay: Int?
    }

    func readKeyDeclaration(_ node: Node, _ path: String) -> KeyDeclaration? {
        if case .scalar(let scalar) = node {
            if DotEnv.isVariableName(scalar.string) {
                reader.error(node, path, "write { env: \(scalar.string) } or list it under keys_env")
            } else {
                reader.error(node, path, "key values are not accepted in routes.yaml; put the key in the environment or env_file and write { env: VARIABLE }")
            }
            return nil
        }
        guard let entries = reader.entries(node, path) else { return nil }
        var env: String?
        var account: String?
        var perMinute: Int?
        var perDay: Int?
        for (key, keyNode, value) in entries {
            let fieldPath = NodeReader.join(path, key)
            switch key {
            case "env":
                guard case .scalar(let scalar) = value else {
                    reader.error(value, fieldPath, "expected a variable name")
                    continue
                }
                if DotEnv.isVariableName(scalar.string) {
                    env = scalar.string
                } else {
                    // Never echo the value: it may be a key pasted in the wrong place.
                    reader.error(value, fieldPath, "must name an environment variable (LIKE_THIS); this looks like a key value, which never goes in routes.yaml")
                }
            case "account":
                account = reader.string(value, fieldPath)
            case "requests_per_minute":
                perMinute = reader.int(value, fieldPath, in: 1...1_000_000_000)
            case "requests_per_day":
                perDay = reader.int(value, fieldPath, in: 1...1_000_000_000)
            case let name where Self.secretFieldNames.contains(name):
                reader.error(keyNode, fieldPath, "key values are not accepted in routes.yaml; put the key in the environment or env_file and write { env: VARIABLE }")
            default:
                reader.error(keyNode, fieldPath, "unknown field '\(key)'\(Suggestion.didYouMean(key, among: ["env", "account", "requests_per_minute", "requests_per_day"]))")
            }
        }
        if env == nil, !entries.contains(where: { $0.key == "env" || Self.secretFieldNames.contains($0.key) }) {
            reader.error(node, path, "missing required field 'env'")
        }
        return env.map { KeyDeclaration(env: $0, account: account, perMinute: perMinute, perDay: perDay) }
    }

    // MARK: models and routes

    static let modelFields = ["provider", "upstream", "context", "speed", "quality", "prefill", "max_request_tokens", "kind"]

    func readModel(_ name: String, _ node: Node, id: ModelID, providers: [Provider]) -> Model? {
        let path = "models.\(name)"
        guard let f = reader.fields(node, path, allowed: Self.modelFields) else { return nil }
        var provider: ProviderID?
        if let providerNode = f.required("provider"), let providerName = reader.string(providerNode, f.path("provider")) {
            provider = providers.first { $0.name == providerName }?.id
            if provider == nil {
                reader.error(providerNode, f.path("provider"),
                             "unknown provider '\(providerName)'\(Suggestion.didYouMean(providerName, among: providers.map(\.name)))")
            }
        }
        let upstream = f.required("upstream").flatMap { reader.string($0, f.path("upstream")) }
        let context = f.required("context").flatMap { reader.int($0, f.path("context"), in: 256...100_000_000) }
        let speed = f.read("speed") { r in { r.int($0, $1, in: 1...10) } } ?? 3
        let quality = f.read("quality") { r in { r.int($0, $1, in: 1...10) } } ?? 3
        let prefill = f.read("prefill") { r in { r.bool($0, $1) } } ?? false
        let maxRequest = f.read("max_request_tokens") { r in { r.int($0, $1, in: 1...100_000_000) } }
        let kind = f.read("kind") { r in { r.choice($0, $1, of: ModelKind.self) } } ?? .chat
        guard let provider, let upstream, let context else { return nil }
        return Model(
            id: id, name: name, kind: kind, provider: provider, upstream: upstream, context: context, speed: speed, quality: quality,
            prefill: prefill, maxRequestTokens: maxRequest)
    }

    static let routeFields = ["prefer", "models", "defaults", "cache", "last_resort"]
    static let reservedDefaults: Set<String> = ["model", "messages", "stream"]

    func readRoute(_ name: String, _ node: Node, models: [Model]) -> Route? {
        let path = "routes.\(name)"
        guard let f = reader.fields(node, path, allowed: Self.routeFields) else { return nil }
        let prefer = f.read("prefer") { r in { r.choice($0, $1, of: Preference.self) } } ?? .speed
        var listed: [ModelID] = []
        if let modelsNode = f.required("models"), let items = reader.list(modelsNode, f.path("models")) {
            if items.isEmpty { reader.error(modelsNode, f.path("models"), "list at least one model") }
            for item in items {
                guard let modelName = reader.string(item.node, item.path) else { continue }
                guard let model = models.first(where: { $0.name == modelName }) else {
                    reader.error(item.node, item.path,
                                 "unknown model '\(modelName)'\(Suggestion.didYouMean(modelName, among: models.map(\.name)))")
                    continue
                }
                if listed.contains(model.id) {
                    reader.warn(item.node, item.path, "'\(modelName)' is listed twice")
                } else {
                    listed.append(model.id)
                }
            }
        }
        var defaults: [String: String] = [:]
        if let defaultsNode = f["defaults"], let entries = reader.entries(defaultsNode, f.path("defaults")) {
            for (key, keyNode, value) in entries {
                let fieldPath = NodeReader.join(f.path("defaults"), key)
                if Self.reservedDefaults.contains(key) {
                    reader.error(keyNode, fieldPath, "'\(key)' cannot have a default")
                } else if let json = reader.json(value, fieldPath) {
                    defaults[key] = json
                }
            }
        }
        let kind = listed.first.map { models[$0].kind } ?? .chat
        if let modelsNode = f["models"], let other = listed.first(where: { models[$0].kind != kind }) {
            reader.error(
                modelsNode, f.path("models"),
                "'\(models[other].name)' is \(Self.article(models[other].kind)) model and '\(models[listed[0]].name)' \(Self.article(kind)) one; a route's models are all chat or all embedding models")
        }
        var route = Route(
            name: name, kind: kind, prefer: prefer, models: listed, rankedModels: Self.rank(listed, by: prefer, models: models),
            defaults: defaults)
        f.assign("cache", to: &route.cacheEnabled) { reader.bool($0, $1) }
        route.lastResort = f.read("last_resort") { r in { r.string($0, $1) } }
        return route
    }

    static func article(_ kind: ModelKind) -> String { kind == .embedding ? "an embedding" : "a chat" }

    /// Static preference order; health and context are applied per request by the planner.
    static func rank(_ listed: [ModelID], by prefer: Preference, models: [Model]) -> [ModelID] {
        let position = Dictionary(uniqueKeysWithValues: listed.enumerated().map { ($1, $0) })
        func key(_ id: ModelID) -> (Int, Int) {
            let m = models[id]
            switch prefer {
            case .speed: return (m.speed, m.quality)
            case .quality: return (m.quality, m.speed)
            case .balanced: return (m.speed + m.quality, m.quality)
            case .listed: return (0, 0)
            }
        }
        return listed.sorted { a, b in
            let ka = key(a), kb = key(b)
            if ka != kb { return ka > kb }
            return position[a, default: 0] < position[b, default: 0]
        }
    }

    // MARK: health, retry, cache

    func readHealth(_ node: Node) -> HealthSettings {
        var h = HealthSettings()
        let names = [
            "error_rate_to_disable", "min_requests", "window", "disable_for", "max_disable_for", "consecutive_failures_to_cool",
            "cooldown", "max_cooldown", "rate_limit_cooldown", "reprobe_after", "max_reprobe_after", "exhausted_cooldown",
            "model_outage", "model_outage_max", "model_failures_for_outage", "model_cooldown", "incident_window",
        ]
        guard let f = reader.fields(node, "health", allowed: names) else { return h }
        f.assign("error_rate_to_disable", to: &h.errorRateToDisable) { reader.fraction($0, $1, in: 0.01...0.99) }
        f.assign("min_requests", to: &h.minRequests) { reader.int($0, $1, in: 1...10_000) }
        f.assign("window", to: &h.window) { reader.duration($0, $1) }
        f.assign("disable_for", to: &h.disableFor) { reader.duration($0, $1) }
        f.assign("max_disable_for", to: &h.maxDisableFor) { reader.duration($0, $1) }
        f.assign("consecutive_failures_to_cool", to: &h.consecutiveFailuresToCool) { reader.int($0, $1, in: 0...10_000) }
        f.assign("cooldown", to: &h.cooldown) { reader.duration($0, $1) }
        f.assign("max_cooldown", to: &h.maxCooldown) { reader.duration($0, $1) }
        f.assign("rate_limit_cooldown", to: &h.rateLimitCooldown) { reader.duration($0, $1) }
        f.assign("reprobe_after", to: &h.reprobeAfter) { reader.duration($0, $1) }
        f.assign("max_reprobe_after", to: &h.maxReprobeAfter) { reader.duration($0, $1) }
        f.assign("exhausted_cooldown", to: &h.exhaustedCooldown) { reader.duration($0, $1) }
        // `model_cooldown` is the field's earlier name.
        f.assign("model_cooldown", to: &h.modelOutage) { reader.duration($0, $1) }
        f.assign("model_outage", to: &h.modelOutage) { reader.duration($0, $1) }
        f.assign("model_outage_max", to: &h.modelOutageMax) { reader.duration($0, $1) }
        f.assign("model_failures_for_outage", to: &h.modelFailuresForOutage) { reader.int($0, $1, in: 1...10_000) }
        f.assign("incident_window", to: &h.incidentWindow) { reader.duration($0, $1) }
        if h.maxDisableFor < h.disableFor {
            reader.error(f["max_disable_for"] ?? node, "health.max_disable_for", "must be at least disable_for (\(h.disableFor.configText))")
        }
        if h.window <= .zero { reader.error(f["window"] ?? node, "health.window", "must be longer than 0s") }
        if h.modelOutageMax < h.modelOutage {
            reader.error(f["model_outage_max"] ?? node, "health.model_outage_max", "must be at least model_outage (\(h.modelOutage.configText))")
        }
        if h.maxCooldown < h.cooldown {
            reader.error(f["max_cooldown"] ?? node, "health.max_cooldown", "must be at least cooldown (\(h.cooldown.configText))")
        }
        return h
    }

    func readRetry(_ node: Node) -> RetrySettings {
        var r = RetrySettings()
        let names = [
            "max_attempts", "backoff", "backoff_cap", "connect_timeout", "first_token_timeout", "stream_idle_timeout",
            "attempt_timeout", "request_deadline", "same_model_retries", "max_wait",
        ]
        guard let f = reader.fields(node, "retry", allowed: names) else { return r }
        f.assign("max_attempts", to: &r.maxAttempts) { reader.int($0, $1, in: 1...20) }
        f.assign("backoff", to: &r.backoff) { node, path in
            guard let items = reader.list(node, path) else { return nil }
            let values = items.compactMap { reader.duration($0.node, $0.path) }
            guard values.count == items.count else { return nil }
            if values.isEmpty { reader.error(node, path, "list at least one duration, e.g. [0s, 2s, 4s]") }
            return values.isEmpty ? nil : values
        }
        f.assign("backoff_cap", to: &r.backoffCap) { reader.duration($0, $1) }
        f.assign("same_model_retries", to: &r.sameModelRetries) { reader.int($0, $1, in: 0...5) }
        f.assign("max_wait", to: &r.maxWait) { reader.duration($0, $1) }
        for (name, keyPath) in [
            ("connect_timeout", \RetrySettings.connectTimeout), ("first_token_timeout", \.firstTokenTimeout),
            ("stream_idle_timeout", \.streamIdleTimeout), ("attempt_timeout", \.attemptTimeout),
            ("request_deadline", \.requestDeadline),
        ] {
            guard let value = f[name], let d = reader.duration(value, f.path(name)) else { continue }
            if d <= .zero {
                reader.error(value, f.path(name), "must be longer than 0s")
            } else {
                r[keyPath: keyPath] = d
            }
        }
        return r
    }

    func readCache(_ node: Node) -> CacheSettings {
        var c = CacheSettings()
        guard let f = reader.fields(node, "cache", allowed: ["enabled", "scope", "ttl", "max_entries", "max_bytes"]) else { return c }
        f.assign("enabled", to: &c.enabled) { reader.bool($0, $1) }
        f.assign("scope", to: &c.scope) { node, path in
            guard let text = reader.scalar(node, path, expected: "per_client or shared") else { return nil }
            guard let scope = CacheSettings.Scope(rawValue: text) else {
                reader.error(node, path, "'\(text)' is not per_client or shared")
                return nil
            }
            return scope
        }
        f.assign("ttl", to: &c.ttl) { reader.duration($0, $1) }
        f.assign("max_entries", to: &c.maxEntries) { reader.int($0, $1, in: 1...100_000_000) }
        f.assign("max_bytes", to: &c.maxBytes) { reader.byteSize($0, $1) }
        return c
    }
}

/// `HOST:PORT`, with `[::1]:8080` for IPv6.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.") }
}
