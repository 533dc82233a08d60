import ArgumentParser

@main
struct SwitchyardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A model-aware routing gateway for OpenAI-compatible LLM providers.",
        subcommands: [ServeCommand.self, CheckCommand.self, ExplainCommand.self]
    )
}
