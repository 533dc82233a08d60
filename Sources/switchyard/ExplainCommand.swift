import ArgumentParser
import Foundation
import SwitchyardCore

/// `switchyard explain`: the candidates a request would get, in order, and why.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show the ordered candidates for a request and why each other model was skipped. Nothing is sent."
    )

    @Option(name: .long, help: "The routing table.")
    var config: String = "routes.yaml"

    @Option(name: .long, help: "The route (or model) name an app would send.")
    var route: String

    @Option(name: .long, help: "Estimated prompt tokens.")
    var promptTokens: Int?

    @Option(name: .long, help: "A chat completions request body (JSON) to estimate from.")
    var request: String?

    @Option(name: .long, help: "The request's max_tokens.")
    var maxTokens: Int?

    @Option(name: .long, help: "An affinity value (x-switchyard-affinity).")
    var affinity: String?

    func validate() throws {
        if (promptTokens == nil) == (request == nil) {
            throw ValidationError("give exactly one of --prompt-tokens N or --request FILE")
        }
        if let promptTokens, promptTokens < 0 { throw ValidationError("--prompt-tokens must be 0 or more") }
    }

    func run() throws {
        let table: RoutingTable
        do {
            table = try ConfigLoader(placeholderKeys: true).load(path: config)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        guard let target = table.target(named: route) else {
            let names = table.routes.map(\.name) + table.models.map(\.name)
            printError("unknown route or model '\(route)'; choose one of: \(names.joined(separator: ", "))")
            throw ExitCode(1)
        }
        var planRequest = PlanRequest(estimatedPromptTokens: promptTokens ?? 0, maxTokens: maxTokens, affinity: affinity)
        if let request {
            guard let data = FileManager.default.contents(atPath: request) else {
                printError("\(request): cannot read the file")
                throw ExitCode(1)
            }
            do {
                let summary = try ChatRequestScan.scan([UInt8](data))
                planRequest.estimatedPromptTokens = summary.estimatedPromptTokens
                planRequest.maxTokens = maxTokens ?? summary.maxTokens
                print("\(request): \(summary.messageCount) messages, an estimated \(summary.estimatedPromptTokens) prompt tokens")
            } catch {
                printError("\(request): \(error)")
                throw ExitCode(1)
            }
        }
        let now = SystemClock().now()
        let health = HealthBook(table: table, now: now)
        let planner = RoutePlanner(table: table)
        let plan = health.withView { view in
            planner.plan(route: target, request: planRequest, health: view, rotation: KeyRotation(providers: table.providers.count), at: now)
        }
        let explanation = PlanExplanation(plan: plan, route: target, request: planRequest, table: table, health: health, at: now)
        for line in explanation.lines { print(line) }
        if !table.unsetKeys.isEmpty {
            print("")
            print("note: \(table.unsetKeys.count) key variables are not set; their keys are shown as '(not set)'")
        }
    }
}
