/// The dotenv format users already keep keys in: `KEY=value`, `export KEY=value`, quotes, `#` comments.
public enum DotEnv {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var value: String
        public var line: Int
    }

    public static func parse(_ text: String) -> (entries: [Entry], problems: [(line: Int, message: String)]) {
        var entries: [Entry] = []
        var problems: [(Int, String)] = []
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = offset + 1
            var line = rawLine.trimmingSpaces()
            if line.hasSuffix("\r") { line = line.dropLast().trimmingSpaces() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst(7).trimmingSpaces() }
            guard let eq = line.firstIndex(of: "=") else {
                problems.append((lineNumber, "expected NAME=value"))
                continue
            }
            let name = String(line[..<eq].trimmingSpaces())
            guard isVariableName(name) else {
                problems.append((lineNumber, "'\(name)' is not a variable name"))
                continue
            }
            var value = line[line.index(after: eq)...].trimmingSpaces()
            if let quote = value.first, quote == "\"" || quote == "'" {
                let body = value.dropFirst()
                if let close = body.firstIndex(of: quote) {
                    value = body[..<close]
                } else {
                    problems.append((lineNumber, "unterminated quote"))
                    continue
                }
                let text = quote == "\"" ? unescape(value) : String(value)
                entries.append(Entry(name: name, value: text, line: lineNumber))
            } else {
                if let hash = value.indices.first(where: { value[$0] == "#" && $0 > value.startIndex && value[value.index(before: $0)] == " " }) {
                    value = value[..<hash].trimmingSpaces()
                }
                entries.append(Entry(name: name, value: String(value), line: lineNumber))
            }
        }
        return (entries, problems)
    }

    static func isVariableName(_ s: some StringProtocol) -> Bool {
        guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    private static func unescape(_ s: Substring) -> String {
        var out = ""
        var escaping = false
        for c in s {
            if escaping {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: out.append(c)
                }
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
