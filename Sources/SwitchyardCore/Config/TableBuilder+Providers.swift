import Yams

/// Providers, their keys and accounts: key values from the environment or the env file, never from the table.
extension TableBuilder {
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
}
