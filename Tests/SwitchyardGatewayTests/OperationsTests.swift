import FakeUpstream
import Foundation
import SwitchyardCore
import SwitchyardGateway
import Testing

@Suite struct OperationsTests {
    /// A minimal reader of the Prometheus text format: every sample line is `name{labels} value`.
    static func samples(_ text: String) throws -> [(name: String, labels: [String: String], value: Double)] {
        var out: [(String, [String: String], Double)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw SchemaError.wrongObject("not a sample: \(line)")
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let open = series.firstIndex(of: "{") {
                guard series.hasSuffix("}") else { throw SchemaError.wrongObject("bad labels: \(line)") }
                name = String(series[..<open])
                let body = series[series.index(after: open)..<series.index(before: series.endIndex)]
                for pair in body.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else { throw SchemaError.wrongObject("bad label: \(pair)") }
                    labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
                }
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) else { throw SchemaError.wrongObject("bad name: \(name)") }
            out.append((name, labels, value))
        }
        return out
    }

    @Test func metricsParseAndCarryTheSeriesAfterTraffic() async throws {
        let bad = Harness.key(2)
        try await withHarness(script: "keys: { \(bad): invalid_key }", reloadable: true) { h in
            for i in 0..<6 { _ = try await h.post(chat("metrics \(i)")) }
            _ = try await h.post(chat("metrics 0"))
            _ = try await h.post(chat("metrics stream", stream: true))
            let reply = try await h.get("/metrics")
            #expect(reply.status == 200)
            #expect(reply.header("content-type")?.hasPrefix("text/plain") == true)
            let samples = try Self.samples(reply.body)
            /// The sum over every series of `name` whose labels include `labels`.
            func value(_ name: String, _ labels: [String: String]) -> Double? {
                let matching = samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
                return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
            }
            #expect((value("switchyard_requests_total", ["route": "auto", "outcome": "success", "cache": "miss"]) ?? 0) >= 6)
            #expect(value("switchyard_requests_total", ["cache": "hit"]) == 1)
            #expect(samples.contains { $0.name == "switchyard_request_duration_seconds_bucket" && $0.labels["route"] == "auto" })
            #expect(samples.contains { $0.name == "switchyard_upstream_duration_seconds_count" && $0.labels["model"] == "fast-8k" })
            #expect(value("switchyard_upstream_attempts_total", ["key": "openrouter#2", "outcome": "key_invalid"]) == 1)
            #expect((value("switchyard_failovers_total", ["route": "auto"]) ?? 0) >= 1)
            #expect(value("switchyard_key_state_info", ["key": "openrouter#2", "state": "removed"]) == 1)
            #expect(value("switchyard_key_state_info", ["key": "openrouter#1", "state": "healthy"]) == 1)
            #expect(value("switchyard_model_state_info", ["model": "fast-8k", "state": "healthy"]) == 1)
            #expect(value("switchyard_cache_total", ["event": "hit"]) == 1)
            #expect(samples.contains { $0.name == "switchyard_cache_bytes" })
            #expect(samples.contains { $0.name == "switchyard_config_reloads_total" })
            for n in 1...4 { #expect(!reply.body.contains(Harness.key(n))) }
        }
    }

    @Test func adminRoutesRefuseWithoutTheTokenAndWorkWithIt() async throws {
        try await withHarness(adminToken: "admin-secret") { h in
            for path in ["/admin/stats"] {
                let none = try await h.get(path).status
                let wrong = try await h.get(path, headers: [("authorization", "Bearer wrong")]).status
                let right = try await h.get(path, headers: [("authorization", "Bearer admin-secret")]).status
                #expect(none == 401 && wrong == 401 && right == 200)
            }
            for path in ["/admin/keys/reset", "/admin/cache/clear", "/admin/keys/disable?key=openrouter%231", "/admin/explain"] {
                let refused = try await h.post(chat(), path: path)
                #expect(refused.status == 401, "\(path)")
                let allowed = try await h.post(chat(), headers: [("authorization", "Bearer admin-secret")], path: path)
                #expect(allowed.status == 200, "\(path): \(allowed.body)")
            }
        }
    }

    @Test func keysCanBeDisabledEnabledAndReset() async throws {
        try await withHarness { h in
            let disabled = try await h.post("", path: "/admin/keys/disable?key=openrouter%233")
            #expect(disabled.status == 200)
            #expect(h.keyState("openrouter#3") == "manually_disabled")
            for i in 0..<8 { _ = try await h.post(chat("manual \(i)")) }
            #expect(h.fake.log().perKey["openrouter#3"] == nil)
            let enabled = try await h.post("", path: "/admin/keys/enable?key=openrouter%233").status
            #expect(enabled == 200)
            #expect(h.keyState("openrouter#3") == "healthy")
            let unknown = try await h.post("", path: "/admin/keys/disable?key=nope%239").status
            let unnamed = try await h.post("", path: "/admin/keys/disable").status
            #expect(unknown == 404 && unnamed == 400)
            _ = try await h.post("", path: "/admin/keys/disable?key=openrouter%231")
            let reset = try await h.post("", path: "/admin/keys/reset").status
            #expect(reset == 200)
            #expect(h.keyState("openrouter#1") == "healthy")
        }
    }

    @Test func explainGivesTheOrderTheDispatcherThenUses() async throws {
        try await withHarness { h in
            for i in 0..<3 {
                let body = chat("explain \(i)")
                let explained = try await h.post(body, path: "/admin/explain")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(explained.body.utf8)) as? [String: Any])
                let first = try #require((json["candidates"] as? [[String: Any]])?.first)
                let keys = try #require(first["keys"] as? [String])
                let reply = try await h.post(body)
                #expect(reply.header("x-switchyard-model") == first["model"] as? String)
                #expect(reply.header("x-switchyard-key") == keys.first)
            }
            let long = try await h.post(chat(String(repeating: "word ", count: 8000)), path: "/admin/explain")
            #expect(long.body.contains(#""model":"fast-8k","reason":"needs"#))
            #expect(h.fake.log().total == 3, "explain sends nothing upstream")
        }
    }

    @Test func theDashboardIsOneSelfContainedPage() async throws {
        try await withHarness { h in
            let page = try await h.get("/admin")
            #expect(page.status == 200)
            #expect(page.header("content-type")?.hasPrefix("text/html") == true)
            #expect(page.body.contains("/admin/stats"))
            #expect(!page.body.contains("http://") && !page.body.contains("https://"), "no external assets")
        }
    }
}
