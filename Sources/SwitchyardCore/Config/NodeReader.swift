import Yams

/// Reads typed values out of a composed YAML tree, recording every problem with its location
/// instead of stopping at the first, so one `switchyard check` run lists everything to fix.
final class NodeReader {
    let file: String
    private(set) var problems: [ConfigProblem] = []

    init(file: String) {
        self.file = file
    }

    func error(_ node: Node?, _ path: String, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark?.line, column: node?.mark?.column, path: path, message: message))
    }

    func warn(_ node: Node?, _ path: String, _ message: String) {
        problems.append(
            ConfigProblem(file: file, line: node?.mark?.line, column: node?.mark?.column, path: path, message: message, severity: .warning)
        )
    }

    func append(_ problem: ConfigProblem) { problems.append(problem) }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// A mapping's entries in file order, with keys as strings.
    func entries(_ node: Node, _ path: String) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            error(node, path, "expected a mapping (key: value lines), found \(kind(of: node))")
            return nil
        }
        var result: [(String, Node, Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                error(keyNode, path, "keys must be plain names")
                continue
            }
            result.append((scalar.string, keyNode, value))
        }
        return result
    }

    /// A mapping with a fixed set of field names: unknown ones are reported with a suggestion.
    func fields(_ node: Node, _ path: String, allowed: [String]) -> Fields? {
        guard let entries = entries(node, path) else { return nil }
        var byKey: [String: Node] = [:]
        for (key, keyNode, value) in entries {
            if allowed.contains(key) {
                byKey[key] = value
            } else {
                error(keyNode, Self.join(path, key), "unknown field '\(key)'\(Suggestion.didYouMean(key, among: allowed))")
            }
        }
        return Fields(node: node, path: path, byKey: byKey, reader: self)
    }

    func kind(of node: Node) -> String {
        switch node {
        case .scalar(let s): s.string.isEmpty && s.style == .plain ? "an empty value" : "'\(s.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func scalar(_ node: Node, _ path: String, expected: String) -> String? {
        guard case .scalar(let scalar) = node else {
            error(node, path, "expected \(expected), found \(kind(of: node))")
            return nil
        }
        return scalar.string
    }

    func string(_ node: Node, _ path: String) -> String? {
        guard let text = scalar(node, path, expected: "a string") else { return nil }
        if text.isEmpty {
            error(node, path, "must not be empty")
            return nil
        }
        return text
    }

    func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = scalar(node, path, expected: "a whole number") else { return nil }
        guard let value = Int(text.replacingUnderscores()) else {
            error(node, path, "'\(text)' is not a whole number")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(value) is out of range \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = scalar(node, path, expected: "true or false") else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(node, path, "'\(text)' is not true or false")
            return nil
        }
    }

    func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = scalar(node, path, expected: "a duration like 300ms, 30s, 5m or 1h") else { return nil }
        guard let value = ValueParsing.duration(text), value >= .zero else {
            error(node, path, "'\(text)' is not a duration; write it like 300ms, 30s, 5m or 1h")
            return nil
        }
        return value
    }

    func byteSize(_ node: Node, _ path: String) -> Int? {
        guard let text = scalar(node, path, expected: "a size like 512KB, 4MB or 1GB") else { return nil }
        guard let value = ValueParsing.byteSize(text), value > 0 else {
            error(node, path, "'\(text)' is not a size; write it like 512KB, 4MB or 1GB")
            return nil
        }
        return value
    }

    func fraction(_ node: Node, _ path: String, in range: ClosedRange<Double>) -> Double? {
        guard let text = scalar(node, path, expected: "a fraction like 0.5 or 50%") else { return nil }
        guard let value = ValueParsing.fraction(text) else {
            error(node, path, "'\(text)' is not a fraction; write it like 0.5 or 50%")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(text) is out of range \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return value
    }

    func list(_ node: Node, _ path: String) -> [(index: Int, node: Node, path: String)]? {
        guard case .sequence(let sequence) = node else {
            error(node, path, "expected a list, found \(kind(of: node))")
            return nil
        }
        return sequence.enumerated().map { ($0.offset, $0.element, "\(path)[\($0.offset)]") }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, of: T.Type) -> T? where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        guard let text = scalar(node, path, expected: "one of \(names.joined(separator: ", "))") else { return nil }
        guard let value = T(rawValue: text) else {
            error(node, path, "'\(text)' is not one of \(names.joined(separator: ", "))\(Suggestion.didYouMean(text, among: names))")
            return nil
        }
        return value
    }

    /// A YAML value as JSON text, for request defaults.
    func json(_ node: Node, _ path: String) -> String? {
        switch node {
        case .scalar(let scalar):
            let text = scalar.string
            if scalar.style == .plain {
                if text == "null" || text == "~" { return "null" }
                if text == "true" || text == "false" { return text }
                if Int(text) != nil { return text }
                if let d = Double(text), d.isFinite { return text }
            }
            return JSONText.quoted(text)
        case .sequence(let sequence):
            var parts: [String] = []
            for (i, element) in sequence.enumerated() {
                guard let part = json(element, "\(path)[\(i)]") else { return nil }
                parts.append(part)
            }
            return "[" + parts.joined(separator: ",") + "]"
        case .mapping:
            guard let entries = entries(node, path) else { return nil }
            var parts: [String] = []
            for (key, _, value) in entries {
                guard let part = json(value, Self.join(path, key)) else { return nil }
                parts.append(JSONText.quoted(key) + ":" + part)
            }
            return "{" + parts.joined(separator: ",") + "}"
        case .alias:
            error(node, path, "YAML aliases are not supported here")
            return nil
        }
    }
}

/// The known fields of one mapping, read through the reader that reports problems.
struct Fields {
    let node: Node
    let path: String
    let byKey: [String: Node]
    let reader: NodeReader

    subscript(key: String) -> Node? { byKey[key] }

    func path(_ key: String) -> String { NodeReader.join(path, key) }

    func required(_ key: String) -> Node? {
        if let value = byKey[key] { return value }
        reader.error(node, path, "missing required field '\(key)'")
        return nil
    }

    func read<T>(_ key: String, _ parse: (NodeReader) -> (Node, String) -> T?) -> T? {
        guard let value = byKey[key] else { return nil }
        return parse(reader)(value, path(key))
    }

    /// Sets `target` when the field is present and valid; leaves the default otherwise.
    func assign<T>(_ key: String, to target: inout T, _ parse: (Node, String) -> T?) {
        guard let value = byKey[key], let parsed = parse(value, path(key)) else { return }
        target = parsed
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        contains("_") ? String(filter { $0 != "_" }) : self
    }
}
