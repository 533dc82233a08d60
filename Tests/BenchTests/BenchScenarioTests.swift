import Foundation
import FakeUpstream
import SwitchyardCore
import Testing
@testable import bench

/// Tiny runs of bench scenarios, so CI notices a broken bench. Figures from a debug build mean nothing;
/// only that the scenarios run and their correctness conditions hold.
@Suite(.serialized) struct BenchScenarioTests {
    @Test(
        .disabled(
            if: dlsym(nil, "__tsan_init") != nil || dlsym(nil, "__asan_init") != nil,
            "its conditions need a minimum request rate; under a sanitizer the gateway runs 3-15x slower"))
    func failoverAndCacheRunAndHoldTheirConditions() async throws {
        let env = try await BenchEnvironment.start(gateway: nil, fakeThreads: 1, inProcess: true, disableFor: 1.5)
        let scenarios = Scenarios(env: env, options: BenchOptions(duration: 1, concurrency: 4, rate: nil))
        let (failover, cache) = try await onThread { (try scenarios.run("failover"), try scenarios.run("cache")) }
        await env.stop()

        #expect(failover.figure("client_error_rate") == 0)
        #expect(failover.figure("requests_to_disabled_key") == 0)
        #expect(failover.figure("recovered") == 1, "\(failover.figures)")
        // A load ran through the fault. How much is no measure here: a debug build sharing two cores with the
        // rest of the suite served 64-92 requests in some full runs, 100+ alone.
        #expect((failover.figure("requests") ?? 0) > 30)
        let hitRate = try #require(cache.figure("hit_rate"))
        let expected = try #require(cache.figure("expected_hit_rate"))
        #expect(abs(hitRate - expected) <= 0.02)
        #expect((cache.figure("upstream_calls_saved") ?? 0) > 0)
        let json = Report.json([failover, cache])
        #expect(json.contains(#""failover_added_ms": {"p50""#))
        #expect(HTMLReport.render([failover, cache]).contains("<svg"))
    }

    @Test func theStackFloorForwardsAChatRequestAndAnswersWithTheUpstreamsBytes() async throws {
        let fake = try await FakeUpstreamServer.start(script: FakeScript(), threads: 1)
        let upstream = fake.baseURL + "/chat/completions"
        let (answer, cpu) = try await onThread {
            let floor = try #require(try StackFloor.start(upstream: upstream), "swift build builds stack-floor beside the tests")
            defer { floor.stop() }
            let body = String(decoding: Prompts.body("stack floor", model: "meta-llama/llama-3.1-8b-instruct:free"), as: UTF8.self)
            return (try HTTP.post(floor.url + "/v1/chat/completions", body), floor.cpuMicros)
        }
        try await fake.shutdown()
        #expect(answer.status == 200)
        #expect(answer.body.contains(#""object":"chat.completion""#), "\(answer.body)")
        #expect(answer.body.contains("meta-llama/llama-3.1-8b-instruct:free"))
        #expect(cpu != nil)
    }

    @Test func theGauntletMeetsEveryFaultInTurnAndReportsIt() async throws {
        let env = try await BenchEnvironment.start(gateway: nil, fakeThreads: 1, inProcess: true)
        let scenarios = Scenarios(env: env, options: BenchOptions(duration: 1, concurrency: 1, rate: nil, quick: true))
        let report = try await onThread { try scenarios.run("gauntlet") }
        await env.stop()

        let phases = Gauntlet.phases(quick: true)
        #expect(report.figure("faults") == Double(phases.count))
        let requests = try #require(report.figure("requests"))
        #expect(requests >= Double(phases.count))
        let outcomes = (report.figure("complete_answers") ?? -1) + (report.figure("failed_requests") ?? -1) + (report.figure("refusals") ?? -1)
        #expect(outcomes == requests, "every request is a complete answer, an expected refusal or a failure: \(report.figures)")
        #expect((report.figure("collateral_requests") ?? 0) >= Double(phases.count - 1))
        #expect(report.figure("attempts_per_fault") != nil)
        #expect(report.details.count == 2 * phases.count + 1)  // attempts and failures by fault, and the flapping model's return
        #expect(report.notes.filter { $0.hasPrefix("PASS ") || $0.hasPrefix("FAIL ") }.count == phases.count)
        let json = Report.json([report])
        #expect(json.contains(#""attempts_by_fault": {"rate_limit""#))
        #expect(json.contains(#""notes": ["#))
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any])
        #expect(HTMLReport.render([report]).contains("gauntlet: notes"))
        // One key per provider: no fault may take the provider's other models down, nor poison the next fault.
        #expect(report.passed, "\(report.notes.joined(separator: "\n"))")
        #expect(report.figure("faults_exercised") == Double(phases.count))
    }

    @Test(
        .disabled(
            if: dlsym(nil, "__tsan_init") != nil || dlsym(nil, "__asan_init") != nil,
            "a shared-cache look or a reservation waits 50 ms at most; under a sanitizer the replicas run 3-15x slower"))
    func theReplicasShareOneStoreAndHoldTheAccountLimitTogether() async throws {
        let env = try await BenchEnvironment.start(gateway: nil, fakeThreads: 1, inProcess: true)
        let scenarios = Scenarios(env: env, options: BenchOptions(duration: 1, concurrency: 1, rate: nil, quick: true))
        let report = try await onThread { try scenarios.run("replicas") }
        await env.stop()

        // Without PostgreSQL or the gateway binary beside the tests the scenario says why and does not fail.
        if report.skipped {
            #expect(!report.failed && report.notes.first?.hasPrefix("skipped: ") == true)
            return
        }
        #expect(report.figure("requests_over_account_limit") == 0, "\(report.figures)")
        #expect((1...Double(ReplicaTable.limitedPerMinute)).contains(report.figure("sent_to_upstream") ?? 0), "served, within the limit")
        #expect(report.details.first { $0.name == "propagation_timeouts" }?.value == 0, "every disable reached the other replicas")
        #expect((report.figure("disable_propagation_ms.p99") ?? .infinity) <= ReplicasScenario.passPropagationMs)
        #expect((report.figure("cross_replica_hit_rate") ?? 0) >= 0.95, "\(report.details)")
        #expect(report.figure("reservation_added_ms.p50") != nil)
        let json = Report.json([report])
        #expect(json.contains(#""disable_propagation_ms": {"p50""#))
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any])
    }

    @Test func theGauntletsTableHasOneKeyPerProviderAndEachRouteFallsBackOnTheSameKey() throws {
        let phases = Gauntlet.phases(quick: false)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gauntlet-\(getpid()).yaml").path
        try Gauntlet.config(baseURL: "http://127.0.0.1:9/v1", listen: "127.0.0.1:0", phases: phases).write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let table = try ConfigLoader(environment: Gauntlet.keyEnvironment).load(path: path)
        #expect(table.providers.count == Gauntlet.providers.count)
        for provider in table.providers { #expect(table.keys.filter { $0.provider == provider.id }.count == 1, "\(provider.name)") }
        #expect(table.routes.count == phases.count)
        for route in table.routes {
            #expect(route.models.count == 2)
            #expect(Set(route.models.map { table.models[$0].provider }).count == 1, "\(route.name)")
            #expect(table.models[route.models[0]].name.hasSuffix("-faulty"))
        }
        #expect(table.retry.firstTokenTimeout == .milliseconds(400))
        // Every fault the fake has is in the gauntlet but those that take the only key out.
        let covered = Set(phases.compactMap(\.fakeFault))
        let keyOnly: Set<FakeFault> = [.none, .invalidKey, .paymentRequired, .dailyCap]
        for fault in FakeFault.allCases where !keyOnly.contains(fault) { #expect(covered.contains(fault.rawValue), "\(fault.rawValue)") }
    }

    @Test func aGauntletAnswerCountsOnlyWhenWhole() {
        let prompt = "whole or not"
        let text = Gauntlet.expected(prompt)
        func result(_ status: Int, _ body: String, attempts: String = "1") -> LoadResult {
            LoadResult(tag: 0, status: status, latencyNs: 1, firstByteNs: 1, headers: ["x-switchyard-attempts": attempts], body: Array(body.utf8), error: nil, completedAt: 0)
        }
        func chunk(_ content: String) -> String {
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(content)\"}}]}\n\n"
        }
        let whole = chunk(String(text.prefix(10))) + chunk(String(text.dropFirst(10))) + "data: [DONE]\n\n"
        #expect(Gauntlet.verdict(result(200, whole), prompt: prompt, stream: true, expect: .answer).ok)
        let truncated = chunk(String(text.prefix(10))) + "data: [DONE]\n\n"
        #expect(!Gauntlet.verdict(result(200, truncated), prompt: prompt, stream: true, expect: .answer).ok)
        #expect(!Gauntlet.verdict(result(200, chunk(text)), prompt: prompt, stream: true, expect: .answer).ok)
        let errorEvent = chunk(text) + "data: {\"error\":{\"message\":\"cut\"}}\n\n"
        #expect(Gauntlet.verdict(result(200, errorEvent), prompt: prompt, stream: true, expect: .answer).why.contains("cut"))
        let plain = #"{"choices":[{"index":0,"message":{"role":"assistant","content":"\#(text)"},"finish_reason":"stop"}]}"#
        #expect(Gauntlet.verdict(result(200, plain), prompt: prompt, stream: false, expect: .answer).ok)
        #expect(!Gauntlet.verdict(result(200, plain.replacingOccurrences(of: "stop", with: "length")), prompt: prompt, stream: false, expect: .answer).ok)
        let refusal = #"{"error":{"message":"blocked","type":"invalid_request_error","code":"content_policy"}}"#
        #expect(Gauntlet.verdict(result(400, refusal), prompt: prompt, stream: false, expect: .refusal(status: 400)).ok)
        #expect(!Gauntlet.verdict(result(400, refusal, attempts: "2"), prompt: prompt, stream: false, expect: .refusal(status: 400)).ok)
        #expect(!Gauntlet.verdict(result(502, refusal), prompt: prompt, stream: false, expect: .refusal(status: 400)).ok)
    }

    @Test func pinningSplitsTheAllowedCPUsBetweenBenchAndWhatItMeasures() {
        #expect(CPUPinning.parse(list: " 0-3,6\n") == [0, 1, 2, 3, 6])
        #expect(CPUPinning.split([0]) == nil, "one CPU: nothing to pin apart")
        #expect(CPUPinning.split([2, 3]) == CPUPinning.Plan(loadGenerator: [2], targets: [3]))
        #expect(CPUPinning.split([0, 1, 2, 3])?.targets == [1, 2, 3])
    }
}
