import Foundation
import FakeUpstream
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
}
