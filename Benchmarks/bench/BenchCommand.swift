import ArgumentParser

@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Switchyard: micro-benchmarks of the decision logic (load scenarios arrive with the load generator)."
    )

    @Option(name: .long, help: "Scenario to run: planner, scan, or all.")
    var scenario: String = "all"

    @Option(name: .long, help: "Routing table for the planner benchmark.")
    var config: String = "routes.yaml"

    @Option(name: .long, help: "Timed runs per benchmark; the median is reported.")
    var runs: Int = 7

    func run() throws {
        #if DEBUG
        print("WARNING: this is a debug build; its figures mean nothing. Run: swift run -c release bench")
        #endif
        let known = ["planner", "scan"]
        let selected = scenario == "all" ? known : [scenario]
        for name in selected where !known.contains(name) {
            throw ValidationError("unknown scenario '\(name)'; choose one of: \(known.joined(separator: ", ")), all")
        }
        var results: [MicroResult] = []
        if selected.contains("planner") { results += try PlannerBenchmark(config: config).run(runs: runs) }
        if selected.contains("scan") { results += ScanBenchmark().run(runs: runs) }
        MicroResult.printTable(results)
    }
}
