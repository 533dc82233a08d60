import Foundation
import Yams

/// Turns routes.yaml (plus its env file and the environment) into a `RoutingTable`,
/// or a `ConfigError` listing every problem with file:line:column and field path.
public struct ConfigLoader: Sendable {
    /// The process environment; key variables are read from here first, then from `env_file`.
    public var environment: [String: String]
    /// Gives each unset key variable a placeholder key, so routing can be shown before keys exist.
    public var placeholderKeys = false

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, placeholderKeys: Bool = false) {
        self.environment = environment
        self.placeholderKeys = placeholderKeys
    }

    /// Loads a file; `env_file` is resolved relative to the file's directory.
    public func load(path: String) throws(ConfigError) -> RoutingTable {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [
                ConfigProblem(file: path, line: nil, column: nil, path: "", message: "cannot read the file (\(Self.reason(error)))")
            ])
        }
        return try parse(yaml: text, file: path, directory: Self.directory(of: path))
    }

    /// Where `env_file` is read from for a routes file at `configPath` (relative names sit beside it);
    /// the reloader watches the same path.
    public static func envFilePath(_ envFile: String, configPath: String) -> String {
        resolve(envFile, in: directory(of: configPath))
    }

    static func directory(of path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }

    static func resolve(_ envFile: String, in directory: String) -> String {
        envFile.hasPrefix("/") ? envFile : "\(directory)/\(envFile)"
    }

    /// Parses YAML text. `directory` anchors a relative `env_file`; nil ignores `env_file`.
    public func parse(yaml: String, file: String, directory: String?) throws(ConfigError) -> RoutingTable {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(problems: [Self.problem(from: error, file: file)])
        } catch {
            throw ConfigError(problems: [ConfigProblem(file: file, line: nil, column: nil, path: "", message: "\(error)")])
        }
        guard let root else {
            throw ConfigError(problems: [ConfigProblem(file: file, line: nil, column: nil, path: "", message: "the file is empty")])
        }
        let reader = NodeReader(file: file)
        let builder = TableBuilder(reader: reader, environment: environment, directory: directory, placeholderKeys: placeholderKeys)
        let table = builder.build(root)
        let errors = reader.problems.filter { $0.severity == .error }
        guard errors.isEmpty, var table else {
            throw ConfigError(problems: errors.isEmpty ? reader.problems : errors)
        }
        table.warnings = reader.problems.filter { $0.severity == .warning }
        return table
    }

    static func problem(from error: YamlError, file: String) -> ConfigProblem {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) " } ?? ""
            return ConfigProblem(file: file, line: mark.line, column: mark.column, path: "", message: "YAML syntax: \(detail)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigProblem(
                file: file, line: context.mark.line, column: context.mark.column, path: "",
                message: "duplicate keys: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigProblem(file: file, line: nil, column: nil, path: "", message: "YAML: \(error)")
        }
    }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}
