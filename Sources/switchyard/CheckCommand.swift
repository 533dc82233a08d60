import ArgumentParser
import Foundation
import SwitchyardCore

/// `switchyard check`: validate routes.yaml and print the table it makes.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a routing table and print it, keys masked. Exits non-zero on any error."
    )

    @Option(name: .long, help: "The routing table to check.")
    var config: String = "routes.yaml"

    func run() throws {
        let table: RoutingTable
        do {
            table = try ConfigLoader().load(path: config)
        } catch {
            printError(error.description)
            printError("\(config): \(error.problems.count) problem\(error.problems.count == 1 ? "" : "s"); nothing was applied")
            throw ExitCode(1)
        }
        for line in TableReport(table: table).lines { print(line) }
    }
}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}
