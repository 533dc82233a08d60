import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct ReloadTests {
    /// Route `auto` led by `first`; an invalid edit names a model that does not exist.
    static func config(first: String, valid: Bool, base: String) -> String {
        let models = valid ? "[\(first), other-8k, long]" : "[fast-8k, no-such-model]"
        return Harness.config.replacingOccurrences(of: "BASE", with: base)
            .replacingOccurrences(of: "auto:      { prefer: speed, models: [fast-8k, other-8k, long] }", with: "auto:      { prefer: listed, models: \(models) }")
    }

    @Test func reloadsUnderLoadLoseNothingAndEndOnTheLastValidTable() async throws {
        try await withHarness(reloadable: true) { h in
            let path = try #require(h.configPath)
            let stop = StopFlag()
            let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for client in 0..<8 {
                    group.addTask {
                        var ok = 0, failed = 0, i = 0
                        while !stop.isSet {
                            i += 1
                            let reply = try await h.post(chat("client \(client) request \(i)"))
                            if reply.status == 200 { ok += 1 } else { failed += 1 }
                        }
                        return (ok, failed)
                    }
                }
                var lastValidFirst = "fast-8k"
                for edit in 0..<20 {
                    let valid = edit % 2 == 0
                    let first = edit % 4 == 0 ? "long" : "fast-8k"
                    try Self.config(first: first, valid: valid, base: h.fake.baseURL).write(toFile: path, atomically: true, encoding: .utf8)
                    let reply = try await h.post("", path: "/admin/reload")
                    #expect(reply.status == (valid ? 200 : 422), "edit \(edit): \(reply.body)")
                    if valid { lastValidFirst = first } else { #expect(reply.body.contains("unknown model 'no-such-model'")) }
                    try await Task.sleep(for: .milliseconds(20))
                }
                stop.set()
                var ok = 0, failed = 0
                for try await (o, f) in group {
                    ok += o
                    failed += f
                }
                #expect(h.store.snapshot.table.route(named: "auto")?.models.first.map { h.store.snapshot.table.models[$0].name } == lastValidFirst)
                return (ok, failed)
            }
            #expect(results.1 == 0, "failed requests during reloads")
            #expect(results.0 > 50)
            let status = try #require(h.gateway.reloader?.status)
            #expect(status.reloads == 10)
            #expect(status.failures == 10)
            #expect(status.lastError.first?.line != nil, "the last edit was invalid: its error is kept with line:column")
        }
    }

    @Test func aFileChangeIsPickedUpAndHealthCarriesOver() async throws {
        let dead = Harness.key(2)
        try await withHarness(script: "keys: { \(dead): invalid_key }", reloadable: true) { h in
            for i in 0..<6 { _ = try await h.post(chat("before \(i)")) }
            #expect(h.keyState("openrouter#2") == "removed")
            let path = try #require(h.configPath)
            try Self.config(first: "long", valid: true, base: h.fake.baseURL).write(toFile: path, atomically: true, encoding: .utf8)
            h.gateway.reloader?.reloadIfChanged()
            #expect(h.store.snapshot.table.route(named: "auto")?.prefer == .listed)
            #expect(h.keyState("openrouter#2") == "removed", "health carries over a reload")
        }
    }

    @Test func statsShowKeysByLabelAndMaskedFormOnly() async throws {
        let dead = Harness.key(4)
        try await withHarness(script: "keys: { \(dead): invalid_key }", reloadable: true) { h in
            for i in 0..<8 { _ = try await h.post(chat("stats \(i)")) }
            let reply = try await h.get("/admin/stats")
            #expect(reply.status == 200)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])
            #expect(json["status"] as? String == "degraded")
            let keys = try #require(json["keys"] as? [[String: Any]])
            #expect(keys.count == 4)
            let removed = try #require(keys.first { $0["label"] as? String == "openrouter#4" })
            #expect(removed["state"] as? String == "removed")
            #expect(removed["until"] is String)
            #expect(removed["masked"] as? String == Secret(dead).masked)
            let served = try #require(keys.first { $0["label"] as? String == "openrouter#1" })
            #expect(((served["latency_ms"] as? [String: Any])?["p50"] as? Double) != nil)
            #expect((((json["models"] as? [[String: Any]])?.first)?["latency_ms"] as? [String: Any])?["p95"] is Double)
            for n in 1...4 { #expect(!reply.body.contains(Harness.key(n))) }
            #expect((json["cache"] as? [String: Any])?["misses"] as? Int == 8)
            #expect(((json["config"] as? [String: Any])?["file"] as? String) == h.configPath)
        }
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
