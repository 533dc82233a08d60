import ArgumentParser
import FakeUpstream
import Foundation

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Switchyard against the bundled fake upstream: throughput, overhead, failover, cache, streaming.",
        discussion: "By default bench starts the fake upstream in-process and the gateway as a child process (built from this package)."
    )

    @Option(name: .long, help: "Scenario: \(Scenarios.all.joined(separator: ", ")), planner, scan, or all.")
    var scenario: String = "all"

    @Option(name: .long, help: "Benchmark a gateway already running at this URL (it must route to --upstream).")
    var gateway: String?

    @Option(name: .long, help: "With --gateway: the fake upstream (fake-upstream) that gateway routes to, e.g. http://127.0.0.1:9001.")
    var upstream: String?

    @Flag(name: .long, help: "Print the routing table a gateway under test should use with --upstream, then exit (with --scenario gauntlet: the gauntlet's own table).")
    var printConfig = false

    @Option(name: .long, help: "Seconds per load phase.")
    var duration: Double = 5

    @Option(name: .long, help: "Concurrent connections (closed loop).")
    var concurrency: Int = 32

    @Option(name: .long, help: "Requests per second (open loop) instead of a closed loop.")
    var rate: Double?

    @Option(name: .long, help: "Write the figures as JSON to this file.")
    var json: String?

    @Option(name: .long, help: "Write a self-contained HTML report (latency histograms, failover timeline) to this file.")
    var html: String?

    @Option(name: .long, help: "Routing table for the planner micro-benchmark.")
    var config: String = "routes.yaml"

    @Option(name: .long, help: "The started gateway's state file: on (as shipped) or off, to measure what persistence costs.")
    var state: String = "on"

    @Option(name: .long, help: "Timed runs per micro-benchmark.")
    var runs: Int = 7

    @Option(name: .long, help: "Run only these faults of the gauntlet (comma-separated, e.g. rate_limit,cut).")
    var gauntletFaults: String?

    @Option(
        name: .long,
        help: "The replicas scenario's PostgreSQL, postgres://user:password@host:port/db; without it bench starts a throwaway cluster when PostgreSQL is installed, else skips the scenario.")
    var postgres: String?

    @Flag(inversion: .prefixedNo, help: "Pin bench (load generator, fake upstream) to the first allowed CPU and what it measures to the others.")
    var pin = true

    func run() async throws {
        #if DEBUG
        warn("WARNING: this is a debug build; its figures mean nothing. Run: swift run -c release bench")
        #endif
        if printConfig, scenario == "gauntlet" {
            print("# Keys: " + Gauntlet.providers.map { "\($0.envName)=\($0.key)" }.joined(separator: " "))
            print(Gauntlet.config(baseURL: (upstream ?? "http://127.0.0.1:9001") + "/v1", listen: "127.0.0.1:8091", phases: Gauntlet.phases(quick: false)))
            return
        }
        if printConfig {
            print("# Keys: " + BenchEnvironment.keys.enumerated().map { "BENCH_KEY_\($0.offset + 1)=\($0.element)" }.joined(separator: " "))
            print(BenchEnvironment.config(baseURL: (upstream ?? "http://127.0.0.1:9001") + "/v1", listen: "127.0.0.1:8091", disableFor: 5))
            return
        }
        let micro = ["planner", "scan"]
        let selected = scenario == "all" ? Scenarios.all : scenario.split(separator: ",").map(String.init)
        for name in selected where !Scenarios.all.contains(name) && !micro.contains(name) {
            throw ValidationError("unknown scenario '\(name)'; choose from \((Scenarios.all + micro).joined(separator: ", ")), all")
        }
        var results: [MicroResult] = []
        if selected.contains("planner") { results += try PlannerBenchmark(config: config).run(runs: runs) }
        if selected.contains("scan") { results += ScanBenchmark().run(runs: runs) }
        if !results.isEmpty { MicroResult.printTable(results) }

        let scenarios = selected.filter { Scenarios.all.contains($0) }
        guard !scenarios.isEmpty else { return }
        guard state == "on" || state == "off" else { throw ValidationError("--state is on or off") }
        let faults = gauntletFaults?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let known = Gauntlet.phases(quick: false).map(\.fault)
        if let unknown = faults?.filter({ !known.contains($0) }), !unknown.isEmpty {
            throw ValidationError("unknown gauntlet fault(s) \(unknown.joined(separator: ", ")); choose from \(known.joined(separator: ", "))")
        }
        if let postgres { _ = try ReplicaStore.masked(postgres) }
        if pin, gateway == nil { CPUPinning.pinBench() }
        let env = try await BenchEnvironment.start(gateway: gateway, upstream: upstream, fakeThreads: 1, persist: state == "on")
        let runner = Scenarios(
            env: env, options: BenchOptions(duration: duration, concurrency: concurrency, rate: rate, gauntletFaults: faults, postgres: postgres))
        var reports: [ScenarioReport] = []
        // The load generator blocks its thread: run it off the cooperative pool.
        for name in scenarios {
            warn("running \(name)…")
            LoadGenerator.progressLabel = name
            let report: ScenarioReport
            do {
                report = try await onThread { try runner.run(name) }
            } catch {
                // A scenario that throws must not leave the gateway bench started running.
                await env.stop()
                throw error
            }
            warn("")
            let figures = report.figures.map { "\($0.name)=\(Report.format($0.value))" }.joined(separator: " ")
            warn("  \(report.verdict) \(name): " + (report.skipped ? report.notes.joined(separator: "; ") : figures))
            reports.append(report)
        }
        await env.stop()
        Report.printTable(reports)
        if let json { try Report.json(reports).write(toFile: json, atomically: true, encoding: .utf8) }
        if let html { try HTMLReport.render(reports).write(toFile: html, atomically: true, encoding: .utf8) }
        if reports.contains(where: \.failed) { throw ExitCode(1) }
    }
}

func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Waits on this (non-cooperative) thread for async work: how a scenario, which runs on a thread of its own,
/// starts or stops a gateway.
func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let box = BlockingResult<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Where `blocking` leaves its result: written by the task before it signals, read after the wait.
private final class BlockingResult<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

enum Report {
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12 { return String(Int(value)) }
        return String(format: abs(value) < 1 ? "%.4f" : "%.2f", value)
    }

    static func printTable(_ reports: [ScenarioReport]) {
        print("")
        print("scenario      result  figures")
        for report in reports {
            print("\(report.name.padding(12))  \(report.verdict)    " + report.figures.map { "\($0.name)=\(format($0.value))" }.joined(separator: "  "))
            print("\("".padding(12))          pass when: \(report.condition)")
            for note in report.notes { print("\("".padding(12))          \(note)") }
        }
    }

    /// Figures by scenario, with the names of design.md §7 (dotted names nest: `latency_ms.p50`).
    static func json(_ reports: [ScenarioReport]) -> String {
        var scenarios: [String] = []
        for report in reports {
            var groups: [String: [(String, Double)]] = [:]
            var order: [String] = []
            var plain: [(String, Double)] = []
            for (name, value) in report.figures + report.details {
                if let dot = name.firstIndex(of: ".") {
                    let group = String(name[..<dot])
                    if groups[group] == nil { order.append(group) }
                    groups[group, default: []].append((String(name[name.index(after: dot)...]), value))
                } else {
                    plain.append((name, value))
                }
            }
            var fields = plain.map { "\"\($0.0)\": \(value($0.1))" }
            for group in order {
                fields.append("\"\(group)\": {" + groups[group]!.map { "\"\($0.0)\": \(value($0.1))" }.joined(separator: ", ") + "}")
            }
            fields.append("\"passed\": \(report.passed)")
            if report.skipped { fields.append("\"skipped\": true") }
            fields.append("\"condition\": \(quoted(report.condition))")
            if !report.notes.isEmpty { fields.append("\"notes\": [" + report.notes.map(quoted).joined(separator: ", ") + "]") }
            scenarios.append("  \"\(report.name)\": {" + fields.joined(separator: ", ") + "}")
        }
        return "{\n" + scenarios.joined(separator: ",\n") + "\n}\n"
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    static func value(_ v: Double) -> String {
        v.isFinite ? (v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)) : "null"
    }
}
