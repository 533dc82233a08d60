import Foundation
import Testing
@testable import SwitchyardCore

struct ConfigLoaderTests {
    @Test func shippedRoutesFileLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../routes.yaml").path
        let table = try ConfigLoader(environment: [:], placeholderKeys: true).load(path: path)
        #expect(table.routes.map(\.name) == ["auto", "quality", "long", "embed"])
        #expect(table.models.count == 8)
        #expect(table.route(named: "embed")?.kind == .embedding)
        #expect(table.route(named: "quality")?.defaults["temperature"] == "0.3")
        #expect(table.keys.count == 9)
        #expect(table.keys.allSatisfy { $0.isPlaceholder })
        let openrouter = try #require(table.providers.first { $0.name == "openrouter" })
        #expect(openrouter.accounts.count == 2)
        #expect(table.accounts[openrouter.accounts[0]].requestsPerDay == 50)
    }

    @Test func keysGroupByAccountAndGetStableLabels() throws {
        let table = try Fixtures.table()
        #expect(table.keys.map(\.label) == ["openrouter#1", "openrouter#2", "openrouter#3", "openrouter#4", "groq#1"])
        #expect(table.keys[0].account == table.keys[1].account)
        #expect(table.keys[1].account != table.keys[2].account)
        #expect(table.accounts.count == 3)
        #expect(table.keys[0].masked == "sk-or-…1111")
        #expect(table.providers[1].kind == .groq)
    }

    @Test func missingVariableIsAWarningThatKeepsLabels() throws {
        var env = Fixtures.environment
        env["K2"] = nil
        let table = try Fixtures.table(environment: env)
        #expect(table.keys.map(\.label) == ["openrouter#1", "openrouter#3", "openrouter#4", "groq#1"])
        #expect(table.warnings.contains { $0.message.contains("K2 is not set") && $0.line == 6 })
        #expect(table.unsetKeys == [UnsetKey(provider: 0, label: "openrouter#2", env: "K2")])
    }

    @Test func everyProblemIsReportedWithItsLocation() throws {
        let yaml = """
            providers:
              openrouter:
                base_url: https://openrouter.ai/api/v1
                keys_env: [K1]
                sync_catalgo: true
            models:
              gemma-2-9b: { provider: openrouter, upstream: google/gemma-2-9b-it:free, context: 8192 }
            routes:
              auto: { prefer: speed, models: [gema-2-9b] }
            retry:
              connect_timeout: 5 seconds
            """
        let error = #expect(throws: ConfigError.self) { try Fixtures.table(yaml) }
        let lines = try #require(error).problems.map(\.description)
        #expect(lines == [
            "routes.yaml:5:5: providers.openrouter.sync_catalgo: unknown field 'sync_catalgo' (did you mean 'sync_catalog'?)",
            "routes.yaml:9:35: routes.auto.models[0]: unknown model 'gema-2-9b' (did you mean 'gemma-2-9b'?)",
            "routes.yaml:11:20: retry.connect_timeout: '5 seconds' is not a duration; write it like 300ms, 30s, 5m or 1h",
        ])
    }

    @Test func syntaxErrorsCarryLineAndColumn() {
        let error = #expect(throws: ConfigError.self) { try Fixtures.table("providers:\n  a: [1, 2\nmodels: {}\n") }
        let problem = error?.problems.first
        #expect(problem?.line != nil)
        #expect(problem?.message.hasPrefix("YAML syntax") == true)
    }

    @Test func keyValuesInTheFileAreRefusedWithoutBeingEchoed() throws {
        let secret = "sk-or-v1-0123456789abcdef0123456789abcdef"
        let yaml = """
            providers:
              openrouter:
                base_url: https://openrouter.ai/api/v1
                keys:
                  - { env: \(secret) }
                  - { api_key: \(secret) }
                  - \(secret)
            models:
              m: { provider: openrouter, upstream: x, context: 8192 }
            routes:
              auto: { models: [m] }
            """
        let error = try #require(#expect(throws: ConfigError.self) { try Fixtures.table(yaml) })
        #expect(error.problems.count == 3)
        #expect(!error.description.contains("0123456789abcdef"))
        #expect(error.problems.allSatisfy { $0.message.contains("routes.yaml") || $0.message.contains("key value") })
    }

    /// What goes into the headers sent upstream is checked at load: a key's variable with a line break, a header
    /// that is not a token or whose value has a control character, a base URL with a space. Each problem names
    /// its field; the key's value is never echoed.
    @Test func whatCannotBeSentInAHeaderIsRefusedAtLoad() throws {
        let yaml = """
            providers:
              openrouter:
                base_url: "https://openrouter.ai/api/v1 "
                headers: { "X Title": switchyard, HTTP-Referer: "https://example.org\\r\\nX-Injected: 1" }
                keys: [ { env: KEY_A }, { env: KEY_B } ]
            models:
              m: { provider: openrouter, upstream: x, context: 8192 }
            routes:
              auto: { models: [m] }
            """
        let secret = "sk-or-v1-0123456789abcdef0123456789abcdef"
        let error = try #require(#expect(throws: ConfigError.self) { try Fixtures.table(yaml, environment: ["KEY_A": secret + "\n", "KEY_B": secret]) })
        let paths = error.problems.map(\.path)
        #expect(paths.contains("providers.openrouter.base_url") && paths.contains("providers.openrouter.headers.X Title"), "\(paths)")
        #expect(paths.contains("providers.openrouter.headers.HTTP-Referer"), "\(paths)")
        #expect(error.problems.contains { $0.message.contains("openrouter#1: KEY_A holds a line break") }, "\(error.description)")
        #expect(error.problems.count == 4, "\(error.description)")
        #expect(!error.description.contains("0123456789abcdef"))
        #expect(error.problems.allSatisfy { $0.line != nil })

        #expect(HeaderText.isName("x-switchyard-attempt") && HeaderText.isName("HTTP-Referer") && !HeaderText.isName("") && !HeaderText.isName("a:b"))
        #expect(HeaderText.isValue("Bearer sk-1\tok é") && !HeaderText.isValue("a\rb") && !HeaderText.isValue("a\u{7F}"))
    }

    @Test func routeDefaultsBecomeJSON() throws {
        let table = try Fixtures.table()
        let route = try #require(table.route(named: "listed"))
        #expect(route.defaults["temperature"] == "0.3")
        #expect(route.defaults["stop"] == "[\"\\n\\n\"]")
    }

    @Test func reservedDefaultsAndBadValuesAreRefused() {
        let yaml = Fixtures.yaml.replacingOccurrences(of: "defaults: { temperature: 0.3", with: "defaults: { stream: true, temperature: 0.3")
            + "\nrouting:\n  context_margin: 80%\n"
        let error = #expect(throws: ConfigError.self) { try Fixtures.table(yaml) }
        let text = error?.description ?? ""
        #expect(text.contains("'stream' cannot have a default"))
        #expect(text.contains("routing.context_margin: 80% is out of range"))
    }

    @Test func modelsAndRoutesRankAtLoad() throws {
        let table = try Fixtures.table()
        func ranked(_ route: String) -> [String] {
            table.route(named: route)!.rankedModels.map { table.models[$0].name }
        }
        #expect(ranked("auto") == ["small-fast", "long-ctx", "big-smart"])
        #expect(ranked("quality") == ["big-smart", "long-ctx", "small-fast"])
        #expect(ranked("balanced") == ["big-smart", "small-fast", "long-ctx"])
        #expect(ranked("listed") == ["big-smart", "small-fast", "long-ctx"])
    }

    @Test func envFileSuppliesKeysAndWarnsWhenOthersCanRead() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let envPath = dir.appendingPathComponent(".env").path
        try "# keys\nexport K1=\"sk-or-v1-fromfile000000000000000000000001\"\nK2=sk-or-v1-fromfile000000000000000000000002 # second\n"
            .write(toFile: envPath, atomically: true, encoding: .utf8)
        chmod(envPath, 0o644)
        let yaml = "env_file: .env\n" + Fixtures.yaml
        let configPath = dir.appendingPathComponent("routes.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        var env = Fixtures.environment
        env["K1"] = nil
        env["K2"] = nil
        let table = try ConfigLoader(environment: env).load(path: configPath)
        #expect(table.keys[0].secret.value == "sk-or-v1-fromfile000000000000000000000001")
        #expect(table.keys[1].secret.value == "sk-or-v1-fromfile000000000000000000000002")
        #expect(table.warnings.contains { $0.message.contains("readable by other users") })
        chmod(envPath, 0o600)
        let quiet = try ConfigLoader(environment: env).load(path: configPath)
        #expect(!quiet.warnings.contains { $0.message.contains("readable by other users") })
    }

    @Test func dotenvFormat() {
        let (entries, problems) = DotEnv.parse("A=1\n# c\nexport B='two words'\nC=\"x\\ny\"\nbad line\nD=4 # note\n")
        #expect(entries.map(\.name) == ["A", "B", "C", "D"])
        #expect(entries.map(\.value) == ["1", "two words", "x\ny", "4"])
        #expect(problems.count == 1 && problems[0].line == 5)
    }

    @Test func theStateFileSitsBesideTheRoutesFileUnlessMovedOrTurnedOff() throws {
        let loader = ConfigLoader(environment: Fixtures.environment)
        #expect(try loader.parse(yaml: Fixtures.yaml, file: "r.yaml", directory: "/etc/sy").statePath == "/etc/sy/switchyard-state.sqlite")
        #expect(try loader.parse(yaml: "state: db/s.sqlite\n" + Fixtures.yaml, file: "r.yaml", directory: "/etc/sy").statePath == "/etc/sy/db/s.sqlite")
        #expect(try loader.parse(yaml: "state: /var/lib/s.sqlite\n" + Fixtures.yaml, file: "r.yaml", directory: "/etc/sy").statePath == "/var/lib/s.sqlite")
        #expect(try loader.parse(yaml: "state: off\n" + Fixtures.yaml, file: "r.yaml", directory: "/etc/sy").statePath == nil)
        #expect(try loader.parse(yaml: Fixtures.yaml, file: "r.yaml", directory: nil).statePath == nil, "text with no file keeps state in memory")
    }
}
