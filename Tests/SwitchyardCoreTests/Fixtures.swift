import SwitchyardCore

/// A small table: one provider with four keys over two accounts, three models, four routes.
enum Fixtures {
    static let environment = [
        "K1": "sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaaaaaa1111",
        "K2": "sk-or-v1-bbbbbbbbbbbbbbbbbbbbbbbbbbbb2222",
        "K3": "sk-or-v1-cccccccccccccccccccccccccccc3333",
        "K4": "sk-or-v1-dddddddddddddddddddddddddddd4444",
        "G1": "gsk_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee5555",
    ]

    static let yaml = """
        providers:
          openrouter:
            base_url: https://openrouter.ai/api/v1
            keys:
              - { env: K1, account: main }
              - { env: K2, account: main }
              - { env: K3, account: spare }
              - { env: K4, account: spare }
          groq:
            base_url: https://api.groq.com/openai/v1
            keys_env: [G1]
        models:
          small-fast:  { provider: openrouter, upstream: vendor/small:free, context: 8192,   speed: 5, quality: 2, prefill: true }
          long-ctx:    { provider: openrouter, upstream: vendor/long:free,  context: 128000, speed: 3, quality: 3, prefill: true }
          big-smart:   { provider: openrouter, upstream: vendor/big:free,   context: 8192,   speed: 2, quality: 5 }
          groq-fast:   { provider: groq, upstream: llama-3.1-8b-instant, context: 131072, speed: 4, quality: 4, max_request_tokens: 6000 }
        routes:
          auto:     { prefer: speed,    models: [small-fast, long-ctx, big-smart] }
          quality:  { prefer: quality,  models: [small-fast, long-ctx, big-smart] }
          balanced: { prefer: balanced, models: [small-fast, long-ctx, big-smart] }
          listed:   { prefer: listed,   models: [big-smart, small-fast, long-ctx], defaults: { temperature: 0.3, stop: ["\\n\\n"] } }
        health:
          window: 60s
          min_requests: 10
          consecutive_failures_to_cool: 0
        """

    static func table(_ text: String = yaml, environment: [String: String] = environment) throws -> RoutingTable {
        try ConfigLoader(environment: environment).parse(yaml: text, file: "routes.yaml", directory: nil)
    }

    static var start: Timestamp { Timestamp(secondsSinceEpoch: 1_800_000_000) }
}

/// A deterministic generator for jitter tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state
    }
}
