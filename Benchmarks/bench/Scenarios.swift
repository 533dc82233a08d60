import FakeUpstream
import Foundation

#if canImport(Glibc)
import Glibc
#endif
import Histogram

/// The scenarios of design.md §7. Each runs against a fresh fake-upstream state and checks its own condition.
struct Scenarios: @unchecked Sendable {
    let env: BenchEnvironment
    let options: BenchOptions

    var chatURL: String { env.gatewayURL + "/v1/chat/completions" }
    var directURL: String { env.fake.baseURL + "/chat/completions" }

    static let all = ["throughput", "failover", "model_outage", "rate_limit", "cache", "context", "stream", "account", "gauntlet", "replicas"]

    /// Tags every prompt of this run, so a gateway that outlives one bench run never answers the next from its cache.
    static let run = "run-\(UInt32.random(in: 0...UInt32.max))"

    func run(_ name: String) throws -> ScenarioReport {
        try env.fake.reset()
        try env.fake.updateBehavior("default: {}\nkeys: {}\nmodels_behavior: {}")
        switch name {
        case "throughput": return try throughput()
        case "failover": return try failover()
        case "model_outage": return try modelOutage()
        case "rate_limit": return try rateLimit()
        case "cache": return try cache()
        case "context": return try context()
        case "stream": return try stream()
        case "account": return try account()
        case "gauntlet": return try gauntlet()
        case "replicas": return try ReplicasScenario(env: env, options: options).run()
        default: throw BenchError("unknown scenario '\(name)'")
        }
    }

    private func until(_ seconds: Double) -> UInt64 { Clock.now() + UInt64(seconds * 1e9) }

    // MARK: throughput

    func throughput() throws -> ScenarioReport {
        var report = ScenarioReport(name: "throughput", condition: "errors == 0")
        var counter = 0
        func load(_ url: String, model: String, headers: [String]) -> (Latencies, Int, Int, UInt64, Timeline) {
            let generator = LoadGenerator(connections: options.concurrency)
            var latencies = Latencies()
            var errors = 0
            var done = 0
            var timeline = Timeline()
            let cpuBefore = threadCPUMicros()
            let next: () -> LoadRequest? = {
                counter += 1
                return LoadRequest(url: url, body: Prompts.body("\(Self.run) throughput \(counter)", model: model), headers: headers, tag: 0)
            }
            let record: (LoadResult) -> Void = { result in
                done += 1
                timeline.record(result)
                if result.status != 200 || result.error != nil { errors += 1 } else { latencies.record(result.latencyNs) }
            }
            if let rate = options.rate {
                generator.runOpen(rate: rate, until: until(options.duration), next: next, done: record)
            } else {
                generator.runClosed(until: until(options.duration), next: next, done: record)
            }
            return (latencies, errors, done, threadCPUMicros() - cpuBefore, timeline)
        }
        let cpuBefore = env.gatewayCPUMicros()
        let started = Clock.now()
        let (gateway, errors, done, loadgenCPU, timeline) = load(chatURL, model: "auto", headers: ["Content-Type: application/json"])
        let elapsed = Double(Clock.now() - started) / 1e9
        let cpuAfter = env.gatewayCPUMicros()
        let (direct, _, directDone, _, _) = load(
            directURL, model: "meta-llama/llama-3.1-8b-instruct:free",
            headers: ["Content-Type: application/json", "Authorization: Bearer \(BenchEnvironment.keys[0])"])
        report.add("rps", Double(done) / elapsed)
        report.add("direct_rps", Double(directDone) / options.duration)
        report.add("latency_ms.p50", gateway.ms(50))
        report.add("latency_ms.p99", gateway.ms(99))
        report.add("overhead_ms.p50", gateway.ms(50) - direct.ms(50))
        report.add("overhead_ms.p99", gateway.ms(99) - direct.ms(99))
        if let before = cpuBefore, let after = cpuAfter, done > 0 {
            report.add("gateway_cpu_us_per_request", Double(after - before) / Double(done))
        }
        report.add("loadgen_cpu_us_per_request", Double(loadgenCPU) / Double(max(done, 1)))
        report.add("errors", Double(errors))
        // The same load through a bare proxy of the same stack: what is the gateway's own, what the stack's.
        if env.process != nil, let floor = try StackFloor.start(upstream: directURL) {
            defer { floor.stop() }
            let before = floor.cpuMicros
            let (bare, bareErrors, bareDone, _, _) = load(
                floor.url + "/v1/chat/completions", model: "meta-llama/llama-3.1-8b-instruct:free", headers: ["Content-Type: application/json"])
            if let before, let after = floor.cpuMicros, bareDone > 0 {
                report.add("stack_floor_cpu_us_per_request", Double(after - before) / Double(bareDone))
            }
            report.add("stack_floor_overhead_ms.p50", bare.ms(50) - direct.ms(50))
            report.add("stack_floor_errors", Double(bareErrors))
        }
        report.timeline = timeline.samples
        report.latencyHistogram = gateway.histogram
        report.passed = errors == 0
        return report
    }

    // MARK: failover

    func failover() throws -> ScenarioReport {
        var report = ScenarioReport(
            name: "failover", condition: "client_error_rate == 0, requests_to_disabled_key == 0, recovered")
        let window = env.disableFor
        // The fault starts at a fifth of the run; cooling (one window), a failed trial, cooling twice as long, then
        // the trial that brings the healed key back at about three windows after the fault.
        let duration = max(options.duration, window * 5)
        let generator = LoadGenerator(connections: min(options.concurrency, 8))
        var firstTry = Latencies()
        var failedOver = Latencies()
        var errors = 0
        var done = 0
        var counter = 0
        var timeline = Timeline()
        let faultAt = Clock.now() + UInt64(duration / 5 * 1e9)
        var faultStarted: Date?
        var healed = false
        let badKey = BenchEnvironment.keys[2]
        generator.runClosed(until: until(duration), next: {
            let now = Clock.now()
            if faultStarted == nil, now >= faultAt {
                do { try env.fake.updateBehavior("keys: { \(badKey): error_500 }") } catch { warn("fault: \(error)") }
                faultStarted = Date()
                report.events.append((timeline.seconds(at: now), "openrouter#3 starts answering 500"))
            }
            // Heal the key upstream after its first trial request has failed (cooling, then cooling twice as long),
            // so the next trial passes and the key comes back.
            if let started = faultStarted, !healed, Date().timeIntervalSince(started) > window * 1.3 {
                try? env.fake.updateBehavior("keys: {}")
                healed = true
                report.events.append((timeline.seconds(at: now), "openrouter#3 healed upstream"))
            }
            counter += 1
            return LoadRequest(url: chatURL, body: Prompts.body("\(Self.run) failover \(counter)"))
        }, done: { result in
            done += 1
            timeline.record(result)
            guard result.status == 200, result.error == nil else {
                errors += 1
                return
            }
            if Int(result.headers["x-switchyard-attempts"] ?? "1") ?? 1 > 1 { failedOver.record(result.latencyNs) } else { firstTry.record(result.latencyNs) }
        })
        let log = try env.fake.log().requests.filter { $0.key == "openrouter#3" }
        let start = faultStarted.map(ms) ?? 0
        let afterFault = log.filter { $0.timeMs >= start }
        // Isolated: the last request before the first gap longer than half the disable window.
        var isolatedAt = afterFault.last?.timeMs ?? start
        for (a, b) in zip(afterFault, afterFault.dropFirst()) where b.timeMs - a.timeMs > Int64(window * 500) {
            isolatedAt = a.timeMs
            break
        }
        let windowEnd = isolatedAt + Int64(window * 1000) - 100
        let toDisabled = afterFault.filter { $0.timeMs > isolatedAt && $0.timeMs < windowEnd }.count
        let recovered = afterFault.contains { $0.timeMs >= windowEnd && $0.action == "ok" }
        report.add("client_error_rate", Double(errors) / Double(max(done, 1)))
        report.add("failover_added_ms.p50", max(0, failedOver.ms(50) - firstTry.ms(50)))
        report.add("failover_added_ms.p99", max(0, failedOver.ms(99) - firstTry.ms(50)))
        report.add("time_to_isolate_ms", Double(isolatedAt - start))
        report.add("requests_to_disabled_key", Double(toDisabled))
        report.add("recovered", recovered ? 1 : 0)
        report.add("requests", Double(done))
        for change in env.healthChanges(subject: "openrouter#3") {
            report.events.append((max(0, change.at.timeIntervalSince1970 - (faultStarted?.timeIntervalSince1970 ?? 0) + duration / 5), "openrouter#3 → \(change.to)"))
        }
        report.timeline = timeline.samples
        report.latencyHistogram = failedOver.histogram
        report.latencyLabel = "latency of requests that failed over"
        report.passed = errors == 0 && toDisabled == 0 && recovered
        return report
    }

    // MARK: model outage, rate limit

    func modelOutage() throws -> ScenarioReport {
        var report = ScenarioReport(name: "model_outage", condition: "client_error_rate == 0, keys_disabled == 0")
        try env.fake.updateBehavior(#"models_behavior: { "meta-llama/llama-3.1-8b-instruct:free": error_503 }"#)
        let logStart = env.logSize
        let (done, errors) = closedLoad(seconds: min(options.duration, 5), connections: min(options.concurrency, 8)) { "\(Self.run) outage \($0)" }
        let disabled = env.keysDisabled(sinceLogOffset: logStart)
        report.add("client_error_rate", Double(errors) / Double(max(done, 1)))
        report.add("keys_disabled", Double(disabled))
        report.add("requests", Double(done))
        report.passed = errors == 0 && disabled == 0
        return report
    }

    func rateLimit() throws -> ScenarioReport {
        var report = ScenarioReport(
            name: "rate_limit", condition: "requests_before_retry_after == 0 (to the limited key × model), client errors == 0")
        let limited = BenchEnvironment.keys[1]
        // An earlier scenario's model fault must not be left in place.
        try env.fake.updateBehavior("keys: { \(limited): { fault: rate_limit, retry_after: 2, times: 1 } }\nmodels_behavior: {}")
        let (done, errors) = closedLoad(seconds: min(options.duration, 4), connections: 4) { "\(Self.run) rate limited \($0)" }
        let log = try env.fake.log().requests.filter { $0.key == "openrouter#2" }
        let first429 = log.first { $0.action == "rate_limit" }
        let limitedAt = first429?.timeMs ?? 0
        // An OpenRouter 429 that names no wider scope holds that model on that key: its other models may serve.
        let early = log.filter { $0.model == first429?.model && $0.timeMs > limitedAt && $0.timeMs < limitedAt + 1_950 }.count
        report.add("requests_before_retry_after", Double(early))
        report.add("client_error_rate", Double(errors) / Double(max(done, 1)))
        report.passed = early == 0 && errors == 0 && limitedAt > 0
        return report
    }

    /// A closed-loop run of unique prompts; returns (requests, errors).
    private func closedLoad(seconds: Double, connections: Int, prompt: (Int) -> String) -> (Int, Int) {
        let generator = LoadGenerator(connections: connections)
        var done = 0, errors = 0, counter = 0
        generator.runClosed(until: until(seconds), next: {
            counter += 1
            return LoadRequest(url: chatURL, body: Prompts.body(prompt(counter)))
        }, done: { result in
            done += 1
            if result.status != 200 || result.error != nil { errors += 1 }
        })
        return (done, errors)
    }

    // MARK: cache

    func cache() throws -> ScenarioReport {
        var report = ScenarioReport(
            name: "cache", condition: "|hit_rate - expected_hit_rate| <= 0.02, hit_latency_ms.p50 < 0.2 (hits replayed on one connection)")
        // A sequence where each request repeats an earlier prompt with probability 0.5.
        var random = SystemRandomNumberGenerator()
        let total = min(3000, max(200, Int(options.duration * 600)))
        var prompts: [String] = []
        var duplicates = 0
        let run = Self.run
        for i in 0..<total {
            if !prompts.isEmpty, Bool.random(using: &random) {
                prompts.append(prompts[Int.random(in: 0..<prompts.count, using: &random)])
            } else {
                prompts.append("cache \(run) \(i)")
            }
        }
        var seen = Set<String>()
        for p in prompts { if !seen.insert(p).inserted { duplicates += 1 } }
        let generator = LoadGenerator(connections: min(options.concurrency, 8))
        var index = 0
        var hits = 0, done = 0
        var hitLatency = Latencies()
        generator.runClosed(until: until(120), next: {
            guard index < prompts.count else { return nil }
            defer { index += 1 }
            return LoadRequest(url: chatURL, body: Prompts.body(prompts[index]))
        }, done: { result in
            done += 1
            if result.headers["x-switchyard-cache"] == "hit" {
                hits += 1
                hitLatency.record(result.latencyNs)
            }
        })
        let expected = Double(duplicates) / Double(total)
        let measured = Double(hits) / Double(max(done, 1))
        let upstreamCalls = try env.fake.log().total
        // The cache path's own latency: every prompt again, now all cached, one request at a time, so a hit
        // does not queue behind the misses the mixed phase sends upstream.
        let replay = LoadGenerator(connections: 1)
        var replayed = 0, replayHits = 0
        var replayLatency = Latencies()
        replay.runClosed(until: until(60), next: {
            guard replayed < min(prompts.count, 2000) else { return nil }
            defer { replayed += 1 }
            return LoadRequest(url: chatURL, body: Prompts.body(prompts[replayed]))
        }, done: { result in
            if result.headers["x-switchyard-cache"] == "hit" {
                replayHits += 1
                replayLatency.record(result.latencyNs)
            }
        })
        // The instrument's own floor, for reading the figure above: the same generator, one connection, a GET the
        // fake upstream (plain SwiftNIO) answers at once. What a hit costs the gateway is roughly the difference.
        let floor = LoadGenerator(connections: 1)
        var floorSent = 0
        var floorLatency = Latencies()
        floor.runClosed(until: until(30), next: {
            guard floorSent < 2000 else { return nil }
            floorSent += 1
            return LoadRequest(url: env.fake.baseURL + "/models", body: [], headers: [], get: true)
        }, done: { result in
            if result.status == 200 { floorLatency.record(result.latencyNs) }
        })
        report.add("hit_rate", measured)
        report.add("expected_hit_rate", expected)
        report.add("hit_latency_ms.p50", replayLatency.ms(50))
        report.add("hit_latency_ms.p99", replayLatency.ms(99))
        report.add("floor_latency_ms.p50", floorLatency.ms(50))
        report.add("hit_latency_under_load_ms.p50", hitLatency.ms(50))
        report.add("hit_latency_under_load_ms.p99", hitLatency.ms(99))
        report.add("replay_hits", Double(replayHits))
        report.add("upstream_calls_saved", Double(done - upstreamCalls))
        report.latencyHistogram = replayLatency.histogram
        report.latencyLabel = "latency of cache hits (one connection)"
        report.passed = abs(measured - expected) <= 0.02 && replayHits == replayed && replayLatency.ms(50) < 0.2
        return report
    }

    // MARK: context

    func context() throws -> ScenarioReport {
        var report = ScenarioReport(name: "context", condition: "context_errors == 0")
        let generator = LoadGenerator(connections: min(options.concurrency, 8))
        var counter = 0, done = 0, long = 0, errors = 0
        let documents = [Prompts.document(tokens: 6000, seed: 1), Prompts.document(tokens: 30000, seed: 2)]
        generator.runClosed(until: until(min(options.duration, 5)), next: {
            counter += 1
            let prompt: String
            switch counter % 5 {
            case 0: prompt = documents[1] + " \(Self.run) \(counter)"
            case 1, 2: prompt = documents[0] + " \(Self.run) \(counter)"
            default: prompt = "\(Self.run) short chat \(counter)"
            }
            return LoadRequest(url: chatURL, body: Prompts.body(prompt))
        }, done: { result in
            done += 1
            if result.status != 200 { errors += 1 }
            if result.headers["x-switchyard-model"] == "long" { long += 1 }
        })
        let contextErrors = try env.fake.log().perAction["context_length_exceeded"] ?? 0
        report.add("context_errors", Double(contextErrors))
        report.add("share_long_context", Double(long) / Double(max(done, 1)))
        report.add("client_errors", Double(errors))
        report.passed = contextErrors == 0 && errors == 0
        return report
    }

    // MARK: account

    /// More load than two accounts may take: the gateway must refuse the excess itself (503 with Retry-After)
    /// so the provider's per-account quota never answers 429.
    func account() throws -> ScenarioReport {
        var report = ScenarioReport(name: "account", condition: "requests_over_account_limit == 0")
        let perMinute = BenchEnvironment.accountRequestsPerMinute
        let accounts = "accounts: { main: [\(BenchEnvironment.keys[0]), \(BenchEnvironment.keys[1])], spare: [\(BenchEnvironment.keys[2]), \(BenchEnvironment.keys[3])] }"
        try env.fake.updateBehavior("default: { requests_per_minute: \(perMinute) }\n" + accounts)
        try env.setAccountLimit(perMinute)
        defer { try? env.setAccountLimit(nil) }
        let generator = LoadGenerator(connections: 4)
        var counter = 0, served = 0, refused = 0, other = 0
        generator.runClosed(until: until(min(options.duration, 3)), next: {
            counter += 1
            return LoadRequest(url: chatURL, body: Prompts.body("\(Self.run) account \(counter)"))
        }, done: { result in
            switch result.status {
            case 200: served += 1
            case 503: refused += 1
            default: other += 1
            }
        })
        let over = try env.fake.log().perAction["quota_429"] ?? 0
        report.add("requests_over_account_limit", Double(over))
        report.add("served", Double(served))
        report.add("refused_503", Double(refused))
        report.add("capacity_per_minute", Double(perMinute * 2))
        report.add("other_errors", Double(other))
        try env.fake.updateBehavior("default: {}")
        report.passed = over == 0 && other == 0 && served <= perMinute * 2
        return report
    }

    // MARK: stream

    func stream() throws -> ScenarioReport {
        var report = ScenarioReport(name: "stream", condition: "truncated_successes == 0, every stream (cut ones too) delivered whole")
        let answerTokens = 24
        func run(_ url: String, model: String, headers: [String], seconds: Double) -> (Latencies, Latencies, Int, Int, Int, Int) {
            let generator = LoadGenerator(connections: min(options.concurrency, 8))
            var ttfb = Latencies(), ttft = Latencies()
            var counter = 0, complete = 0, truncated = 0, errors = 0, done = 0
            var prompts: [Int: String] = [:]
            generator.runClosed(until: until(seconds), next: {
                counter += 1
                let prompt = "\(Self.run) stream \(counter)"
                prompts[counter] = prompt
                return LoadRequest(url: url, body: Prompts.body(prompt, model: model, stream: true), headers: headers, keepBody: true, tag: counter)
            }, done: { result in
                done += 1
                ttfb.record(result.firstByteNs)
                if result.firstContentNs > 0 { ttft.record(result.firstContentNs) }
                let text = String(decoding: result.body, as: UTF8.self)
                let content = StreamCheck.content(text)
                let expected = FakeAnswer.text(for: "user:" + (prompts.removeValue(forKey: result.tag) ?? ""), count: answerTokens)
                if result.status != 200 { errors += 1 }
                if text.contains("data: [DONE]") {
                    if content == expected { complete += 1 } else { truncated += 1 }
                } else {
                    errors += 1
                }
            })
            return (ttfb, ttft, done, complete, truncated, errors)
        }
        try env.fake.updateBehavior("default: { answer_tokens: \(answerTokens), token_interval: 2ms }")
        let (direct, directText, _, _, _, _) = run(
            directURL, model: "meta-llama/llama-3.1-8b-instruct:free",
            headers: ["Content-Type: application/json", "Authorization: Bearer \(BenchEnvironment.keys[0])"], seconds: 3)
        let (healthy, healthyText, _, _, _, _) = run(chatURL, model: "auto", headers: ["Content-Type: application/json"], seconds: 3)
        // A third of the fast model's streams are cut halfway; the gateway must continue them elsewhere.
        try env.fake.updateBehavior(
            #"default: { answer_tokens: \#(answerTokens), token_interval: 2ms }\#nmodels_behavior: { "meta-llama/llama-3.1-8b-instruct:free": { fault: cut, after_tokens: 10, probability: 0.33 } }"#)
        try env.fake.reset()
        let (_, _, done, complete, truncated, errors) = run(chatURL, model: "auto", headers: ["Content-Type: application/json"], seconds: min(options.duration, 5))
        let log = try env.fake.log()
        let cut = log.perAction["cut"] ?? 0
        let continued = log.perAction["prefill"] ?? 0
        report.add("ttfb_overhead_ms.p50", healthy.ms(50) - direct.ms(50))
        report.add("ttfb_overhead_ms.p99", healthy.ms(99) - direct.ms(99))
        // The gateway sends its head with the first text (a stream that fails before output fails over unseen),
        // so its first byte waits for the upstream's first token; the text's first byte is the like-for-like time.
        report.add("ttft_overhead_ms.p50", healthyText.ms(50) - directText.ms(50))
        report.add("ttft_overhead_ms.p99", healthyText.ms(99) - directText.ms(99))
        report.add("midstream_cut", Double(cut))
        report.add("midstream_continued", Double(min(continued, cut)))
        report.add("truncated_successes", Double(truncated))
        report.add("complete", Double(complete))
        report.add("errors", Double(errors))
        report.add("requests", Double(done))
        // A continuation can be cut again (the fault is per request), so cuts may outnumber continuations;
        // what counts is that every stream, cut or not, reached the client complete.
        report.passed = truncated == 0 && errors == 0 && complete == done && (cut == 0 || continued > 0)
        return report
    }
}

/// Reads a chat completions SSE body the way a strict client would.
enum StreamCheck {
    static func content(_ text: String) -> String {
        var out = ""
        for block in text.components(separatedBy: "\n\n") {
            guard block.hasPrefix("data: {"), let data = block.dropFirst(6).data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let choices = object["choices"] as? [[String: Any]]
            else { continue }
            for choice in choices { out += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? "" }
        }
        return out
    }
}
