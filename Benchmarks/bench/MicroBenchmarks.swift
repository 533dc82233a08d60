import SwitchyardCore

/// One micro-benchmark figure: the median over several timed runs.
struct MicroResult {
    var name: String
    var nanosecondsPerOp: [Double]

    var median: Double {
        let sorted = nanosecondsPerOp.sorted()
        return sorted[sorted.count / 2]
    }

    static func printTable(_ results: [MicroResult]) {
        let width = results.map(\.name.count).max() ?? 10
        print("benchmark".padding(width) + "   median     min      max   (per operation, \(results.first?.nanosecondsPerOp.count ?? 0) runs)")
        for r in results {
            let sorted = r.nanosecondsPerOp.sorted()
            print(r.name.padding(width) + "  " + format(r.median) + "  " + format(sorted.first ?? 0) + "  " + format(sorted.last ?? 0))
        }
    }

    static func format(_ ns: Double) -> String {
        let text = ns >= 1000 ? String(format1(ns / 1000)) + " µs" : String(format1(ns)) + " ns"
        return String(repeating: " ", count: max(0, 9 - text.count)) + text
    }

    static func format1(_ v: Double) -> String {
        let scaled = (v * 100).rounded() / 100
        return String(scaled)
    }
}

/// Times `body` over `iterations`, `runs` times; returns ns per iteration for each run.
func measure(runs: Int, iterations: Int, _ body: () -> Void) -> [Double] {
    let clock = ContinuousClock()
    body()  // warm up
    return (0..<runs).map { _ in
        let elapsed = clock.measure {
            for _ in 0..<iterations { body() }
        }
        return Double(elapsed.components.seconds) * 1e9 / Double(iterations) + Double(elapsed.components.attoseconds) / 1e9 / Double(iterations)
    }
}

/// Planning one request over the shipped table, then claiming a key and recording the outcome:
/// the decision work the gateway adds to every proxied request.
struct PlannerBenchmark {
    let config: String

    func run(runs: Int) throws -> [MicroResult] {
        let table = try ConfigLoader(environment: [:], placeholderKeys: true).load(path: config)
        let book = HealthBook(table: table, now: SystemClock().now())
        let planner = RoutePlanner(table: table)
        let rotation = KeyRotation(providers: table.providers.count)
        guard let auto = table.route(named: "auto") else { throw BenchError("the table has no 'auto' route") }
        let clock = SystemClock()
        let prompts = [40, 900, 3000, 7000, 20000]
        var i = 0
        let iterations = 200_000

        let planOnly = measure(runs: runs, iterations: iterations) {
            i &+= 1
            let now = clock.now()
            let request = PlanRequest(estimatedPromptTokens: prompts[i % prompts.count])
            let plan = book.withView { planner.plan(route: auto, request: request, health: $0, rotation: rotation, at: now) }
            blackHole(plan.candidates.count)
        }
        let full = measure(runs: runs, iterations: iterations) {
            i &+= 1
            let now = clock.now()
            let request = PlanRequest(estimatedPromptTokens: prompts[i % prompts.count])
            let plan = book.withView { planner.plan(route: auto, request: request, health: $0, rotation: rotation, at: now) }
            guard let first = plan.candidates.first, let key = first.keys.first else { return }
            _ = book.beginAttempt(key: key, model: first.model, at: now)
            let events = book.record(model: first.model, key: key, outcome: .success, at: now)
            blackHole(events.count)
        }
        return [
            MicroResult(name: "plan (auto route, shipped table)", nanosecondsPerOp: planOnly),
            MicroResult(name: "plan + claim key + record outcome", nanosecondsPerOp: full),
        ]
    }
}

/// Reading a typical chat request: validation, `model` location and token estimate in one pass; and its cache key
/// (canonical form and SHA-256), which every request makes while the cache is on; and reading an answer to keep it.
struct ScanBenchmark {
    func run(runs: Int) -> [MicroResult] {
        let small = Array(
            #"{"model":"auto","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about switchyards and trains at dawn, please."}],"temperature":0.7,"max_tokens":200}"#
                .utf8)
        let document = String(repeating: "Freight cars are sorted by gravity over the hump into classification tracks. ", count: 300)
        let large = Array(#"{"model":"long","messages":[{"role":"user","content":"\#(document)"}]}"#.utf8)
        // The same text in lines, as prompts mostly come: every string holds escapes to decode and write again.
        let lines = String(repeating: #"Freight cars are sorted by gravity over the hump into classification tracks.\n"#, count: 300)
        let lined = Array(#"{"model":"long","messages":[{"role":"user","content":"\#(lines)"}]}"#.utf8)
        let linedMessages = Array(#"{"model":"long","max_tokens":256,"messages":[{"role":"user","content":"\#(lines)"}]}"#.utf8)
        let smallResult = measure(runs: runs, iterations: 200_000) {
            blackHole((try? ChatRequestScan.scan(small))?.estimatedPromptTokens ?? 0)
        }
        let largeResult = measure(runs: runs, iterations: 5_000) {
            blackHole((try? ChatRequestScan.scan(large))?.estimatedPromptTokens ?? 0)
        }
        let keyResult = measure(runs: runs, iterations: 100_000) {
            blackHole(small.withUnsafeBytes { CanonicalRequest.key(body: $0, scope: "shared", defaults: [:]) } == nil ? 0 : 1)
        }
        let largeKeyResult = measure(runs: runs, iterations: 5_000) {
            blackHole(large.withUnsafeBytes { CanonicalRequest.key(body: $0, scope: "shared", defaults: [:]) } == nil ? 0 : 1)
        }
        let linedKeyResult = measure(runs: runs, iterations: 5_000) {
            blackHole(lined.withUnsafeBytes { CanonicalRequest.key(body: $0, scope: "shared", defaults: [:]) } == nil ? 0 : 1)
        }
        let linedTranslateResult = measure(runs: runs, iterations: 5_000) {
            blackHole((try? AnthropicRequest.translate(linedMessages))?.body.count ?? 0)
        }
        let answer = Array(
            #"{"id":"gen-1733390000-abcdefghijklmnopqrst","object":"chat.completion","created":1733390000,"model":"meta-llama/llama-3.1-8b-instruct:free","choices":[{"index":0,"message":{"role":"assistant","content":"Freight cars roll over the hump at dawn, sorted by gravity into their tracks."},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":17,"total_tokens":59}}"#
                .utf8)
        let answerResult = measure(runs: runs, iterations: 200_000) {
            blackHole(CachedAnswer.fromCompletion(body: answer, modelName: "fast-8k", keyLabel: "openrouter#1")?.cost ?? 0)
        }
        return [
            MicroResult(name: "scan \(small.count) B request", nanosecondsPerOp: smallResult),
            MicroResult(name: "scan \(large.count / 1024) KB request", nanosecondsPerOp: largeResult),
            MicroResult(name: "cache key of the \(small.count) B request", nanosecondsPerOp: keyResult),
            MicroResult(name: "cache key of the \(large.count / 1024) KB request", nanosecondsPerOp: largeKeyResult),
            MicroResult(name: "cache key of the \(lined.count / 1024) KB request in lines", nanosecondsPerOp: linedKeyResult),
            MicroResult(name: "translate the \(linedMessages.count / 1024) KB Messages request in lines", nanosecondsPerOp: linedTranslateResult),
            MicroResult(name: "read a \(answer.count) B answer for the cache", nanosecondsPerOp: answerResult),
        ]
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@inline(never)
func blackHole(_ value: Int) {
    if value == Int.min { print("unreachable") }
}

extension String {
    func padding(_ length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
