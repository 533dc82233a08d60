import Foundation
import Locking

/// One request as the fake saw it, for `GET /_control/log`.
public struct FakeLogEntry: Sendable, Codable, Equatable {
    public var timeMs: Int64
    public var model: String
    public var key: String
    public var attempt: Int?
    public var promptTokens: Int
    public var stream: Bool
    public var action: String

    enum CodingKeys: String, CodingKey {
        case timeMs = "time_ms", model, key, attempt, promptTokens = "prompt_tokens", stream, action
    }
}

/// The log and counters `GET /_control/log` returns.
public struct FakeLog: Sendable, Codable, Equatable {
    public var requests: [FakeLogEntry]
    public var perKey: [String: Int]
    public var perModel: [String: Int]
    public var perAction: [String: Int]
    public var total: Int

    enum CodingKeys: String, CodingKey {
        case requests, perKey = "per_key", perModel = "per_model", perAction = "per_action", total
    }
}

/// What the fake decided to do with one chat request.
struct FakeDecision {
    var fault: FakeFault
    var behavior: FakeBehavior
    /// Headers for the answer: `x-ratelimit-*` from a simulated quota.
    var headers: [(String, String)]
    /// The quota is spent: answer 429.
    var overQuota: Bool
}

/// Everything mutable in the fake, behind one lock held for microseconds.
final class FakeUpstreamState: Sendable {
    private struct State {
        var script: FakeScript
        var startedAt: Date
        var faultCounts: [String: Int] = [:]
        var quotaWindows: [String: [Date]] = [:]
        var log: [FakeLogEntry] = []
        var perKey: [String: Int] = [:]
        var perModel: [String: Int] = [:]
        var perAction: [String: Int] = [:]
        var total = 0
        var nextID = 0
        /// Each key's label, worked out once per script (keys recur on every request).
        var labels: [String: String] = [:]

        mutating func label(_ key: String) -> String {
            if let known = labels[key] { return known }
            let made = FakeUpstreamState.label(key, script)
            labels[key] = made
            return made
        }
    }

    /// The log keeps this many recent requests; the counters count them all.
    static let logCapacity = 500_000

    private let state: Locked<State>

    init(script: FakeScript) {
        state = Locked(State(script: script, startedAt: Date()))
    }

    var script: FakeScript { state.withLock { $0.script } }

    func replaceScript(with body: String) throws {
        let current = script
        let updated = try current.updated(with: body)
        state.withLock {
            $0.script = updated
            $0.faultCounts = [:]
            $0.labels = [:]
        }
    }

    func reset() {
        state.withLock {
            $0.startedAt = Date()
            $0.faultCounts = [:]
            $0.quotaWindows = [:]
            $0.log = []
            $0.perKey = [:]
            $0.perModel = [:]
            $0.perAction = [:]
            $0.total = 0
        }
    }

    func nextID() -> Int { state.withLock { s in s.nextID += 1; return s.nextID } }

    func label(for key: String) -> String {
        state.withLock { $0.label(key) }
    }

    fileprivate static func label(_ key: String, _ script: FakeScript) -> String {
        if let name = script.keyLabels[key] { return name }
        if key.isEmpty { return "(none)" }
        let chars = Array(key)
        return chars.count >= 12 ? String(chars[0..<6]) + "…" + String(chars[(chars.count - 4)...]) : "…" + String(chars.suffix(2))
    }

    /// Decides the behaviour for a request with `key` on `model`: merges key over model over default,
    /// then applies `times`, `down_for` and `probability` to the fault of the layer that set it.
    func decide(key: String, model: String, now: Date = Date()) -> FakeDecision {
        state.withLock { s in
            let layers: [(String, FakeBehavior?)] = [
                ("key:\(key)", s.script.keyBehavior[key]), ("model:\(model)", s.script.modelBehavior[model]),
                ("default", s.script.defaultBehavior),
            ]
            var merged = FakeBehavior()
            var faultSource: String?
            for (source, layer) in layers.reversed() {
                guard let b = layer else { continue }
                if let f = b.fault {
                    merged.fault = f
                    merged.probability = b.probability
                    merged.times = b.times
                    merged.downFor = b.downFor
                    faultSource = source
                }
                merged.retryAfterSeconds = b.retryAfterSeconds ?? merged.retryAfterSeconds
                merged.afterTokens = b.afterTokens ?? merged.afterTokens
                merged.delay = b.delay ?? merged.delay
                if b.latency != nil {
                    merged.latency = b.latency
                    merged.latencyMax = b.latencyMax
                }
                merged.tokenInterval = b.tokenInterval ?? merged.tokenInterval
                merged.answerTokens = b.answerTokens ?? merged.answerTokens
                merged.keepAlive = b.keepAlive ?? merged.keepAlive
                merged.rejectPrefill = b.rejectPrefill ?? merged.rejectPrefill
                merged.requestsPerMinute = b.requestsPerMinute ?? merged.requestsPerMinute
            }
            var fault = merged.fault ?? .none
            if fault != .none, let source = faultSource {
                if let downFor = merged.downFor, now.timeIntervalSince(s.startedAt) >= Double(downFor.components.seconds) + Double(downFor.components.attoseconds) / 1e18 {
                    fault = .none
                } else if let p = merged.probability, Double.random(in: 0..<1) >= p {
                    fault = .none
                } else if let times = merged.times {
                    let used = s.faultCounts[source, default: 0]
                    if used >= times { fault = .none } else { s.faultCounts[source] = used + 1 }
                }
            }
            var headers: [(String, String)] = []
            var overQuota = false
            if let limit = merged.requestsPerMinute {
                let scope = s.script.accounts.first { $0.value.contains(key) }.map { "account:\($0.key)" } ?? "key:\(key)"
                var window = s.quotaWindows[scope, default: []].filter { now.timeIntervalSince($0) < 60 }
                let reset = window.first.map { max(0, 60 - now.timeIntervalSince($0)) } ?? 60
                if window.count >= limit {
                    overQuota = true
                } else {
                    window.append(now)
                }
                s.quotaWindows[scope] = window
                headers = [
                    ("x-ratelimit-limit-requests", "\(limit)"),
                    ("x-ratelimit-remaining-requests", "\(max(0, limit - window.count))"),
                    ("x-ratelimit-reset-requests", String(format: "%.2fs", reset)),
                ]
            }
            return FakeDecision(fault: fault, behavior: merged, headers: headers, overQuota: overQuota)
        }
    }

    func record(key: String, model: String, attempt: Int?, promptTokens: Int, stream: Bool, action: String) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { s in
            let label = s.label(key)
            if s.log.count >= Self.logCapacity { s.log.removeFirst(s.log.count / 2) }
            s.log.append(
                FakeLogEntry(timeMs: now, model: model, key: label, attempt: attempt, promptTokens: promptTokens, stream: stream, action: action))
            s.perKey[label, default: 0] += 1
            s.perModel[model, default: 0] += 1
            s.perAction[action, default: 0] += 1
            s.total += 1
        }
    }

    func log() -> FakeLog {
        state.withLock { s in FakeLog(requests: s.log, perKey: s.perKey, perModel: s.perModel, perAction: s.perAction, total: s.total) }
    }
}
