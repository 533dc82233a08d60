import FakeUpstream
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The gauntlet (design.md §7): one gateway with **one key per provider** meets every fault of the fake
/// upstream in turn, each on a model of its own whose route is `[faulty model, healthy fallback on the same key]`.
/// Every request must end in a complete answer (a content refusal: its status after one attempt), and no fault may
/// degrade the requests for other models ("collateral").
///
/// The table: `openrouter` (kind openrouter) carries most faults, so one key serves many models at once; a
/// limit whose scope may be read as the key (`rate_limit`, `rate_limit_no_retry_after`: an unknown provider's 429,
/// widened to the key when a second model of it is limited) gets a provider of its own, as does OpenRouter's
/// account-wide `free-models-per-min` (its fallback is a paid model, which that limit does not cover); Groq's
/// per-model 429 and 413 go to a `groq` provider.
enum Gauntlet {
    enum Expect: Equatable {
        /// 200 with the whole deterministic answer (a stream ending with `[DONE]`).
        case answer
        /// This status after exactly one attempt, and nothing sent to the fallback.
        case refusal(status: Int)
    }

    struct Provider {
        var name: String
        var kind: String
        var key: String
        var envName: String { "GAUNTLET_KEY_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
        /// The gateway's label for the provider's only key.
        var label: String { name + "#1" }
    }

    struct Phase {
        /// Names the phase in notes and in `--gauntlet-faults`.
        var fault: String
        var provider: String
        /// The faulty model's behaviour at the fake, a YAML flow mapping.
        var behavior: String
        /// `p` a plain request, `s` a stream, in order.
        var requests: String
        var expect = Expect.answer
        /// Arm the fault's `times: 1` again before every request: each request meets the fault exactly once.
        var rearm = false
        /// Requests alternate a prompt over the faulty model's real context with a short one.
        var longPrompts = false
        /// The faulty model's context as routes.yaml says and as the fake enforces it.
        var configuredContext = 131_072
        var fakeContext = 131_072
        /// Flapping: (the fault lasts this long from the phase's start, requests keep coming this long after).
        var flap: (down: Double, after: Double)?
        /// Issue 15 wants the faulty model itself to answer (after a same-key retry): said in the notes, not a condition.
        var wantFaultyToServe = false
        /// What the fake's log calls an answer with the fault.
        var action: String

        init(
            _ fault: String, on provider: String, _ behavior: String, requests: String, expect: Expect = .answer, rearm: Bool = false,
            longPrompts: Bool = false, configuredContext: Int = 131_072, fakeContext: Int = 131_072, flap: (down: Double, after: Double)? = nil,
            wantFaultyToServe: Bool = false, action: String? = nil
        ) {
            self.fault = fault
            self.provider = provider
            self.behavior = behavior
            self.requests = requests
            self.expect = expect
            self.rearm = rearm
            self.longPrompts = longPrompts
            self.configuredContext = configuredContext
            self.fakeContext = fakeContext
            self.flap = flap
            self.wantFaultyToServe = wantFaultyToServe
            self.action = action ?? fault
        }

        /// The fake's name of the fault the faulty model has (nil for context length, which is the prompt's doing).
        var fakeFault: String? {
            guard let range = behavior.range(of: "fault: ") else { return nil }
            return String(behavior[range.upperBound...].prefix { $0 != "," && $0 != " " && $0 != "}" })
        }

        var slug: String { fault.replacingOccurrences(of: "_", with: "-") }
        var route: String { "gauntlet-" + slug }
        var faulty: String { slug + "-faulty" }
        var fallback: String { slug + "-fallback" }
    }

    static let answerTokens = 24

    static let providers = [
        Provider(name: "openrouter", kind: "openrouter", key: "sk-or-v1-gauntlet-openrouter-0000000000001"),
        Provider(name: "openrouter-free", kind: "openrouter", key: "sk-or-v1-gauntlet-openrouter-free-00000001"),
        Provider(name: "groq", kind: "groq", key: "gsk_gauntlet_groq_000000000000000000000001"),
        Provider(name: "upstream-a", kind: "generic", key: "sk-gauntlet-upstream-a-000000000000000001"),
        Provider(name: "upstream-b", kind: "generic", key: "sk-gauntlet-upstream-b-000000000000000001"),
    ]

    /// Every fault of the fake that a fallback on the same key can answer for. Left out: `invalid_key`,
    /// `payment_required` and `daily_cap` take the provider's only key (or account) out, so no model of it can
    /// serve; they belong to scenarios with more keys.
    static func phases(quick: Bool) -> [Phase] {
        let all = [
            Phase("rate_limit", on: "upstream-a", "{ fault: rate_limit, retry_after: 2 }", requests: "ppspsp"),
            Phase("rate_limit_no_retry_after", on: "upstream-b", "{ fault: rate_limit_no_retry_after }", requests: "ppspsp"),
            Phase("rate_limit_model", on: "groq", "{ fault: rate_limit_model, retry_after: 2 }", requests: "ppspsp"),
            Phase("free_models_per_min", on: "openrouter-free", "{ fault: free_models_per_min, retry_after: 2 }", requests: "ppspsp"),
            Phase("upstream_rate_limited", on: "openrouter", "{ fault: upstream_rate_limited, retry_after: 2 }", requests: "ppspsp"),
            Phase("groq_tpm", on: "groq", "{ fault: groq_tpm }", requests: "ppsp"),
            Phase(
                "error_500_once", on: "openrouter", "{ fault: error_500, times: 1 }", requests: "ppss", rearm: true, wantFaultyToServe: true,
                action: "error_500"),
            Phase("error_502", on: "openrouter", "{ fault: error_502 }", requests: "ppsp"),
            Phase("error_503", on: "openrouter", "{ fault: error_503 }", requests: "ppsps"),
            Phase("error_503_retry_after", on: "openrouter", "{ fault: error_503_retry_after, retry_after: 2 }", requests: "ppsp"),
            Phase("reset", on: "openrouter", "{ fault: reset }", requests: "ppss"),
            Phase("hang", on: "openrouter", "{ fault: hang }", requests: "psps"),
            Phase("slow_first_token", on: "openrouter", "{ fault: slow_first_token, delay: 1500ms }", requests: "sss"),
            Phase("cut", on: "openrouter", "{ fault: cut, after_tokens: 8, times: 1 }", requests: "ssss", rearm: true),
            Phase("stall", on: "openrouter", "{ fault: stall, after_tokens: 8, times: 1 }", requests: "sss", rearm: true),
            Phase("stream_error", on: "openrouter", "{ fault: stream_error, after_tokens: 8, times: 1 }", requests: "sss", rearm: true),
            Phase("malformed", on: "openrouter", "{ fault: malformed, after_tokens: 8 }", requests: "ssss"),
            Phase("no_done", on: "openrouter", "{ fault: no_done }", requests: "ssss"),
            Phase("choice_error", on: "openrouter", "{ fault: choice_error }", requests: "pppp"),
            Phase("model_gone", on: "openrouter", "{ fault: model_gone }", requests: "ppsps"),
            Phase(
                "context_length", on: "openrouter", "{}", requests: "pppsps", longPrompts: true, configuredContext: 32768, fakeContext: 4096,
                action: "context_length_exceeded"),
            Phase("content_policy", on: "openrouter", "{ fault: content_policy }", requests: "ppsp", expect: .refusal(status: 400)),
            Phase("moderation", on: "openrouter", "{ fault: moderation }", requests: "psp", expect: .refusal(status: 403)),
            // Down 2 s, then watched for 12 s: a model outage's first window (10 s) and its trial fit in.
            Phase(
                "flapping", on: "openrouter", "{ fault: error_503, down_for: \(quick ? 1 : 2)s }", requests: "ps",
                flap: quick ? (1, 1) : (2, 12), action: "error_503"),
        ]
        guard quick else { return all }
        return all.map { phase in
            var short = phase
            // A long prompt first for the context phase: that is the one that meets the fault.
            short.requests = String(phase.requests.reduce(into: "") { out, c in if !out.contains(c) { out.append(c) } })
            return short
        }
    }

    static func provider(_ phase: Phase) -> Provider { providers.first { $0.name == phase.provider }! }

    /// The model id the fake serves: OpenRouter's look `vendor/model:free`; the free-models-per-min fallback is a
    /// paid model, so that limit does not cover it.
    static func upstream(_ phase: Phase, faulty: Bool) -> String {
        let name = faulty ? phase.faulty : phase.fallback
        guard provider(phase).kind == "openrouter" else { return "gauntlet-" + name }
        return "gauntlet/" + name + (phase.fault == "free_models_per_min" && !faulty ? "" : ":free")
    }

    static var keyEnvironment: [String: String] {
        Dictionary(uniqueKeysWithValues: providers.map { ($0.envName, $0.key) })
    }

    /// The gateway's routing table: the shipped defaults but for small timeouts and backoff (so a silent
    /// upstream costs 400 ms, not 15 s) and no cache (every request goes upstream).
    static func config(baseURL: String, listen: String, phases: [Phase]) -> String {
        var lines = [
            "# bench's gauntlet: one key per provider; every route is [faulty model, healthy fallback on the same key].",
            "server: { listen: \(listen), max_body_bytes: 4MB }",
            "state: off",
            "providers:",
        ]
        for p in providers {
            lines.append("  \(p.name): { base_url: \"\(baseURL)\", kind: \(p.kind), keys_env: [\(p.envName)] }")
        }
        lines.append("models:")
        for phase in phases {
            lines.append(
                "  \(phase.faulty): { provider: \(phase.provider), upstream: \"\(upstream(phase, faulty: true))\", context: \(phase.configuredContext), speed: 5, quality: 3, prefill: true }"
            )
            lines.append(
                "  \(phase.fallback): { provider: \(phase.provider), upstream: \"\(upstream(phase, faulty: false))\", context: 131072, speed: 4, quality: 3, prefill: false }"
            )
        }
        lines.append("routes:")
        for phase in phases {
            lines.append("  \(phase.route): { prefer: listed, models: [\(phase.faulty), \(phase.fallback)] }")
        }
        lines += [
            "retry:",
            "  max_attempts: 4",
            "  backoff: [0s, 50ms, 100ms]",
            "  connect_timeout: 1s",
            "  first_token_timeout: 400ms",
            "  stream_idle_timeout: 400ms",
            "  attempt_timeout: 500ms",
            "  request_deadline: 10s",
            "cache: { enabled: false }",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The fake's script for the gauntlet with `active`'s fault armed: every gauntlet model in the catalog (beside
    /// the seed models other scenarios use), fallbacks that refuse a prefill (they are `prefill: false`, so none
    /// should be sent one), and the keys' labels.
    static func fakeScript(phases: [Phase], active: Phase?) -> String {
        var models = FakeScript.defaultModels
        for phase in phases {
            models[upstream(phase, faulty: true)] = phase.fakeContext
            models[upstream(phase, faulty: false)] = 131_072
        }
        var labels: [String: String] = [:]
        for (key, label) in zip(BenchEnvironment.keys, BenchEnvironment.labels) { labels[key] = label }
        for p in providers { labels[p.key] = p.label }
        return [
            "models: {" + models.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}",
            "default: { answer_tokens: \(answerTokens) }",
            behaviors(phases: phases, active: active),
            "key_labels: {" + labels.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}",
        ].joined(separator: "\n")
    }

    static func behaviors(phases: [Phase], active: Phase?) -> String {
        var entries = phases.map { "\"\(upstream($0, faulty: false))\": { reject_prefill: true }" }
        if let active { entries.append("\"\(upstream(active, faulty: true))\": \(active.behavior)") }
        return "models_behavior: {" + entries.joined(separator: ", ") + "}"
    }

    /// The answer the fake gives `prompt`, whichever model gives it.
    static func expected(_ prompt: String) -> String { FakeAnswer.text(for: "user:" + prompt, count: answerTokens) }

    /// Whether `result` is what a client should get, and if not, what went wrong.
    static func verdict(_ result: LoadResult, prompt: String, stream: Bool, expect: Expect) -> (ok: Bool, why: String) {
        if let error = result.error { return (false, "transport error: \(error)") }
        let text = String(decoding: result.body, as: UTF8.self)
        let attempts = result.headers["x-switchyard-attempts"] ?? "?"
        if case .refusal(let status) = expect {
            guard result.status == status else {
                return (false, "status \(result.status), expected the refusal's \(status): \(errorMessage(text))")
            }
            guard attempts == "1" else { return (false, "refused with \(status) but after \(attempts) attempts") }
            return (true, "")
        }
        guard result.status == 200 else { return (false, "status \(result.status): \(errorMessage(text))") }
        let want = expected(prompt)
        if stream {
            let content = StreamCheck.content(text)
            if text.contains("\"error\"") { return (false, "stream carried an error event (\(errorMessage(text))) after \(content.count) of \(want.count) characters") }
            guard text.contains("data: [DONE]") else { return (false, "stream ended without [DONE] after \(content.count) of \(want.count) characters") }
            guard content == want else { return (false, "stream ended with [DONE] but its text differs (\(content.count) of \(want.count) characters)") }
            return (true, "")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any],
            let choice = (object["choices"] as? [[String: Any]])?.first
        else { return (false, "200 without a chat completion body") }
        let content = (choice["message"] as? [String: Any])?["content"] as? String ?? ""
        let finish = choice["finish_reason"] as? String ?? "nil"
        guard finish == "stop", content == want else { return (false, "200 with finish_reason \(finish) and \(content.count) of \(want.count) characters") }
        return (true, "")
    }

    /// A failure's reason with the model's name and the seconds to wait taken out, so alike failures group.
    static func general(_ why: String, model: String) -> String {
        var text = why.replacingOccurrences(of: model, with: "M")
        if let regex = try? NSRegularExpression(pattern: "(retry in |retry-after )[0-9]+s?") {
            text = regex.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1N")
        }
        return text
    }

    /// The `error.message` of an error body or of an SSE error event, shortened.
    static func errorMessage(_ text: String) -> String {
        var candidates = [text]
        candidates += text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }.map { String($0.dropFirst(6)) }
        for candidate in candidates {
            guard let object = try? JSONSerialization.jsonObject(with: Data(candidate.utf8)) as? [String: Any],
                let error = object["error"] as? [String: Any]
            else { continue }
            let message = error["message"] as? String ?? "\(error)"
            return message.count > 160 ? String(message.prefix(160)) + "…" : message
        }
        return text.isEmpty ? "(empty body)" : String(text.prefix(80))
    }
}

/// The gauntlet's requests, one at a time on one keep-alive connection.
final class GauntletClient {
    let chatURL: String
    private let generator = LoadGenerator(connections: 1)
    var latencies = Latencies()
    var timeline = Timeline()

    init(gatewayURL: String) {
        chatURL = gatewayURL + "/v1/chat/completions"
    }

    func send(model: String, prompt: String, stream: Bool) -> LoadResult {
        let request = LoadRequest(url: chatURL, body: Prompts.body(prompt, model: model, stream: stream), keepBody: true)
        var sent = false
        var result: LoadResult?
        generator.runClosed(until: Clock.now() + 120_000_000_000, next: {
            guard !sent else { return nil }
            sent = true
            return request
        }, done: { result = $0 })
        let answer = result ?? LoadResult(tag: 0, status: 0, latencyNs: 0, firstByteNs: 0, headers: [:], body: [], error: "not sent", completedAt: Clock.now())
        latencies.record(answer.latencyNs)
        timeline.record(answer)
        return answer
    }
}

extension Scenarios {
    func gauntlet() throws -> ScenarioReport {
        var report = ScenarioReport(
            name: "gauntlet",
            condition: "failed_requests == 0 (a content refusal: its status after one attempt), collateral_failures == 0")
        var phases = Gauntlet.phases(quick: options.quick)
        let all = phases
        if let only = options.gauntletFaults {
            let unknown = only.filter { name in !phases.contains { $0.fault == name } }
            guard unknown.isEmpty else {
                throw BenchError("unknown gauntlet fault(s) \(unknown.joined(separator: ", ")); known: \(phases.map(\.fault).joined(separator: ", "))")
            }
            phases = phases.filter { only.contains($0.fault) }
        }
        let fake = env.fake
        let baseURL = fake.baseURL
        try fake.updateBehavior(Gauntlet.fakeScript(phases: all, active: nil))
        let environment = env
        let gateway = try blocking {
            try await environment.startScenarioGateway(
                name: "gauntlet", config: { Gauntlet.config(baseURL: baseURL, listen: $0, phases: all) }, keyEnvironment: Gauntlet.keyEnvironment)
        }
        defer { if let gateway { try? blocking { await gateway.stop() } } }
        let gatewayURL = gateway?.url ?? env.gatewayURL
        if let gateway, env.process != nil { report.notes.append("gateway log: \(gateway.logPath)") }
        let client = GauntletClient(gatewayURL: gatewayURL)
        let started = Date()

        var complete = 0, failed = 0, refusals = 0, requests = 0, upstreamCalls = 0
        var collateralRequests = 0, collateralFailures = 0
        var faultsPassed = 0, faultsExercised = 0
        var counter = 0
        var collateralTurn = 0

        func prompt(_ label: String) -> String {
            counter += 1
            return "\(Self.run) gauntlet \(label) \(counter)"
        }

        // Collateral failures of the current phase: reason (the model's name taken out) → the models that met it.
        var collateralSeen: [String: [String]] = [:]
        var collateralSent = 0
        var lastStates: String?

        func collateral(_ model: String, stream: Bool) {
            let p = prompt("collateral")
            let result = client.send(model: model, prompt: p, stream: stream)
            collateralRequests += 1
            collateralSent += 1
            let (ok, why) = Gauntlet.verdict(result, prompt: p, stream: stream, expect: .answer)
            if !ok {
                collateralFailures += 1
                collateralSeen[Gauntlet.general(why, model: model), default: []].append(model)
            }
        }

        for (index, phase) in phases.enumerated() {
            collateralSeen = [:]
            collateralSent = 0
            try fake.reset()
            try fake.updateBehavior(Gauntlet.fakeScript(phases: all, active: phase))
            // Models of other routes that are healthy now: every other fallback, and the faulty models still to come.
            let others = all.filter { $0.fault != phase.fault }.map(\.fallback) + phases[(index + 1)...].map(\.faulty)
            let phaseStart = Date()
            var ok = 0, results: [(shape: Character, result: LoadResult, ok: Bool, why: String)] = []
            func one(_ shape: Character, _ i: Int) throws {
                if phase.rearm { try fake.updateBehavior(Gauntlet.behaviors(phases: all, active: phase)) }
                let stream = shape == "s"
                var text = prompt(phase.fault)
                if phase.longPrompts, i % 2 == 0 { text = Prompts.document(tokens: phase.fakeContext + 2000, seed: i) + text }
                let result = client.send(model: phase.route, prompt: text, stream: stream)
                let (good, why) = Gauntlet.verdict(result, prompt: text, stream: stream, expect: phase.expect)
                results.append((shape, result, good, why))
                if good { ok += 1 }
                if !others.isEmpty {
                    collateral(others[collateralTurn % others.count], stream: collateralTurn % 2 == 1)
                    collateralTurn += 1
                }
            }
            let shapes = Array(phase.requests)
            if let flap = phase.flap {
                var i = 0
                while Date().timeIntervalSince(phaseStart) < flap.down + flap.after {
                    try one(shapes[i % shapes.count], i)
                    i += 1
                    usleep(250_000)
                }
            } else {
                for (i, shape) in shapes.enumerated() { try one(shape, i) }
            }

            // What the fake saw for this route's two models.
            let log = try fake.log().requests
            let faultyID = Gauntlet.upstream(phase, faulty: true), fallbackID = Gauntlet.upstream(phase, faulty: false)
            let faultyLog = log.filter { $0.model == faultyID }, fallbackLog = log.filter { $0.model == fallbackID }
            let calls = faultyLog.count + fallbackLog.count
            let exercised = faultyLog.contains { $0.action == phase.action }
            var passed = ok == results.count
            var extra: [String] = []
            if case .refusal = phase.expect, !fallbackLog.isEmpty || faultyLog.count != results.count {
                passed = false
                extra.append("  ✗ the fake saw \(faultyLog.count) requests on the faulty model and \(fallbackLog.count) on the fallback for \(results.count) refusals (one each on the faulty model, none on the fallback, expected)")
            }
            requests += results.count
            upstreamCalls += calls
            if case .refusal = phase.expect {
                // A refusal that reached the fallback or was retried failed, whatever its status said.
                refusals += passed ? ok : 0
                failed += passed ? 0 : (ok == results.count ? results.count : results.count - ok)
            } else {
                complete += ok
                failed += results.count - ok
            }
            if passed { faultsPassed += 1 }
            if exercised { faultsExercised += 1 }
            let attempts = Double(calls) / Double(max(results.count, 1))
            report.details.append(("attempts_by_fault.\(phase.fault)", attempts))
            report.details.append(("failed_by_fault.\(phase.fault)", Double(results.count - ok)))

            func actions(_ entries: [FakeLogEntry]) -> String {
                let counts = Dictionary(grouping: entries, by: \.action).mapValues(\.count)
                return counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            }
            let served = Dictionary(grouping: results.compactMap { $0.result.headers["x-switchyard-model"] }, by: { $0 }).mapValues(\.count)
                .sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            let plain = shapes.filter { $0 == "p" }.count, streams = shapes.count - plain
            report.notes.append(
                "\(passed ? "PASS" : "FAIL") \(phase.fault) (\(Gauntlet.provider(phase).label), \(results.count) requests: \(phase.flap.map { "alternating, down \(Int($0.down)) s then healthy \(Int($0.after)) s" } ?? "\(plain) plain, \(streams) streamed")): "
                    + "\(ok)/\(results.count) \(phase.expect == .answer ? "complete" : "refused as expected"), \(String(format: "%.2f", attempts)) upstream calls per request "
                    + "[faulty: \(actions(faultyLog)); fallback: \(actions(fallbackLog))]; served by: \(served.isEmpty ? "-" : served)"
                    + (exercised ? "" : "; the fault was never met (the faulty model got no request it failed)"))
            // Failures, alike ones together: "#2 #4 plain/stream: why [what the gateway's headers said]".
            var groups: [(why: String, requests: [String])] = []
            for (n, r) in results.enumerated() where !r.ok {
                let h = r.result.headers
                let why = Gauntlet.general(r.why, model: phase.route)
                    + " [attempts \(h["x-switchyard-attempts"] ?? "-"), model \(h["x-switchyard-model"] ?? "-"), key \(h["x-switchyard-key"] ?? "-")]"
                let request = "#\(n + 1) \(r.shape == "s" ? "stream" : "plain")"
                if let i = groups.firstIndex(where: { $0.why == why }) { groups[i].requests.append(request) } else { groups.append((why, [request])) }
            }
            report.notes += extra
            for group in groups { report.notes.append("  ✗ \(group.requests.joined(separator: ", ")): \(group.why)") }
            if let flap = phase.flap {
                let healedAt = ms(phaseStart) + Int64(flap.down * 1000)
                let back = faultyLog.first { $0.timeMs >= healedAt && $0.action == "ok" }.map { Double($0.timeMs - healedAt) / 1000 }
                let trials = faultyLog.filter { $0.timeMs >= healedAt }.count
                report.details.append(("flapping.served_again_after_s", back ?? -1))
                report.notes.append(
                    (back.map { String(format: "  flapping: the faulty model served again %.1f s after it healed", $0) }
                        ?? "  flapping: the faulty model did not serve again in the \(Int(flap.after)) s after it healed")
                        + "; \(faultyLog.count - trials) requests reached it while down")
            }
            if phase.wantFaultyToServe {
                let byFaulty = results.filter { $0.ok && $0.result.headers["x-switchyard-model"] == phase.faulty }.count
                report.notes.append("  served by the faulty model itself (issue 15: after one same-key retry): \(byFaulty) of \(results.count)")
            }
            let states = Self.unhealthy(gatewayURL) ?? "all healthy"
            if states != lastStates { report.notes.append("  gateway after it: \(states)") }
            lastStates = states
            if !passed { report.events.append((client.timeline.seconds(at: Clock.now()), "✗ \(phase.fault)")) }

            // Between faults: every other route's fallback once.
            if !options.quick {
                for model in all.filter({ $0.fault != phase.fault }).map(\.fallback) { collateral(model, stream: false) }
            }
            if !collateralSeen.isEmpty {
                let failures = collateralSeen.values.reduce(0) { $0 + $1.count }
                report.notes.append("  ✗ collateral during and after it: \(failures) of \(collateralSent) requests for other models failed")
                for (why, models) in collateralSeen.sorted(by: { $0.value.count > $1.value.count }) {
                    let names = Array(Set(models)).sorted()
                    report.notes.append("      \(models.count)× \(why) (\(names.prefix(4).joined(separator: ", "))\(names.count > 4 ? ", … \(names.count - 4) more" : ""))")
                }
            }
        }

        let attemptsPerFault = Double(upstreamCalls) / Double(max(requests, 1))
        report.add("complete_answers", Double(complete))
        report.add("failed_requests", Double(failed))
        report.add("refusals", Double(refusals))
        report.add("attempts_per_fault", attemptsPerFault)
        report.add("collateral_failures", Double(collateralFailures))
        report.add("collateral_requests", Double(collateralRequests))
        report.add("requests", Double(requests))
        report.add("faults", Double(phases.count))
        report.add("faults_passed", Double(faultsPassed))
        report.add("faults_exercised", Double(faultsExercised))
        report.add("seconds", Date().timeIntervalSince(started))
        report.timeline = client.timeline.samples
        report.latencyHistogram = client.latencies.histogram
        report.latencyLabel = "latency of every gauntlet request (faults and collateral)"
        report.passed = failed == 0 && collateralFailures == 0 && requests > 0
        return report
    }

    /// Keys and models the gateway does not call healthy, from `/admin/stats` (nil when all are, or unreadable).
    static func unhealthy(_ gatewayURL: String) -> String? {
        guard let (status, body) = try? HTTP.get(gatewayURL + "/admin/stats"), status == 200,
            let stats = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        else { return nil }
        var out: [String] = []
        for (section, name) in [("keys", "label"), ("models", "name")] {
            for item in stats[section] as? [[String: Any]] ?? [] {
                let state = item["state"] as? String ?? "?"
                guard state != "healthy" else { continue }
                let reason = (item["reason"] as? String).map { $0.count > 90 ? String($0.prefix(90)) + "…" : $0 } ?? ""
                out.append("\(item[name] as? String ?? "?") \(state)\(reason.isEmpty ? "" : " (\(reason))")")
            }
        }
        return out.isEmpty ? nil : out.joined(separator: "; ")
    }
}
