import ArgumentParser

@main
struct SwitchyardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-aware routing gateway for OpenAI-compatible LLM providers.",
        subcommands: [CheckCommand.self, ExplainCommand.self]
    )
}
