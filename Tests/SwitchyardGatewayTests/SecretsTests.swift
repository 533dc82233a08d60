import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

/// Drives every path that can carry an upstream's words or a key's identity and checks that no key value
/// appears in anything the gateway writes or serves: only labels and masked forms.
@Suite struct SecretsSweepTests {
    @Test func noKeyValueAppearsInResponsesLogsStatsMetricsOrTheDashboard() async throws {
        // Key 1 is rejected with a message that echoes it in full, key 2 fails with 500s, key 3 is out of credits;
        // gemma (other-8k) is gone upstream.
        let script = """
            keys: { \(Harness.key(1)): { fault: invalid_key }, \(Harness.key(2)): { fault: error_500 }, \(Harness.key(3)): { fault: payment_required } }
            models_behavior: { "google/gemma-2-9b-it:free": { fault: model_gone } }
            """
        let logs = LogCapture()
        try await withHarness(script: script, adminToken: "admin-secret", statePath: PersistenceTests.temporaryStatePath(), logs: logs) { h in
            var served: [String] = []
            func keep(_ reply: Harness.Reply) {
                served.append(reply.body)
                served.append(reply.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n"))
            }
            for i in 0..<12 {
                keep(try await h.post(chat("sweep \(i)")))
                keep(try await h.post(chat("sweep stream \(i)", stream: true)))
                keep(try await h.post(chat("gone \(i)", model: "other-8k")))
            }
            // Every candidate failing: the 502 lists attempts with the upstream's (redacted) words.
            keep(try await h.post(chat("only the echoing key", model: "noprefill"), headers: [("x-switchyard-affinity", "a")]))
            // Client errors, and a client that sends a key as its own credential: it is never echoed or forwarded.
            keep(try await h.post("{not json"))
            keep(try await h.post(chat(model: "no-such-model")))
            keep(try await h.post(chat(), headers: [("authorization", "Bearer \(Harness.key(4))")]))
            let admin = [("authorization", "Bearer admin-secret")]
            for path in ["/admin/stats", "/metrics", "/admin", "/admin/usage?days=1", "/v1/models", "/healthz"] {
                keep(try await h.get(path, headers: admin))
            }
            keep(try await h.post(chat("explain me"), headers: admin, path: "/admin/explain"))
            #expect(served.contains { $0.contains("openrouter#1") }, "keys do appear, by label")
            #expect(
                served.contains { $0.contains("Incorrect API key provided") } || logs.text.contains("Incorrect API key provided"),
                "the upstream's echo of the key was carried, redacted")

            let logText = logs.text
            #expect(logText.contains("openrouter#1"), "the log names keys by label")
            #expect(logText.contains("debug") || logText.contains("info"))
            let forwarded = h.upstreamRequests()
            for n in 1...4 {
                let key = Harness.key(n)
                let tail = String(key.suffix(12))
                for (i, text) in served.enumerated() {
                    #expect(!text.contains(key) && !text.contains(tail), "served output \(i) carries key \(n): \(text.prefix(300))")
                }
                #expect(!logText.contains(key) && !logText.contains(tail), "the log carries key \(n)")
            }
            #expect(!forwarded.isEmpty)
        }
    }

    @Test func configProblemsNeverQuoteAKey() throws {
        let key = "sk-or-v1-0123456789abcdef0123456789abcdef"
        let yaml = """
            providers:
              openrouter:
                base_url: https://openrouter.ai/api/v1
                keys_env: [\(key)]
                keys:
                  - { env: K1, key: \(key) }
            models:
              m: { provider: openrouter, upstream: x, context: 8192, speed: 1, quality: 1 }
            routes:
              auto: { prefer: speed, models: [m] }
            """
        do {
            _ = try ConfigLoader(environment: ["K1": "gsk_not_an_openrouter_key_0000000000"]).parse(yaml: yaml, file: "r.yaml", directory: nil)
            Issue.record("a key pasted into routes.yaml must be refused")
        } catch {
            let text = error.description
            #expect(text.contains("r.yaml:4"))
            #expect(!text.contains(key) && !text.contains("0123456789abcdef"), "\(text)")
            #expect(!text.contains("gsk_not_an_openrouter_key"))
        }
    }
}
