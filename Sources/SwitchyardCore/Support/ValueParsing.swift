/// Parsers for the human-written values of routes.yaml and provider headers.
public enum ValueParsing {
    /// `300ms`, `30s`, `5m`, `1h`, `1.5s`, `0s`; also compound Go-style durations (`2m59.56s`, `1h2m`)
    /// as providers send in `x-ratelimit-reset-*`. A bare number is not a duration: the unit is required.
    public static func duration(_ text: Substring) -> Duration? {
        var rest = text.trimmingSpaces()
        guard !rest.isEmpty else { return nil }
        var totalNanoseconds: Double = 0
        while !rest.isEmpty {
            guard let (number, afterNumber) = leadingNumber(rest) else { return nil }
            let unitEnd = afterNumber.firstIndex(where: { !$0.isLetter && $0 != "µ" }) ?? afterNumber.endIndex
            let unit = afterNumber[afterNumber.startIndex..<unitEnd]
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            case "d": scale = 86_400e9
            default: return nil
            }
            totalNanoseconds += number * scale
            rest = afterNumber[unitEnd...]
        }
        guard totalNanoseconds.isFinite, totalNanoseconds < 1e18 else { return nil }
        return .nanoseconds(Int64(totalNanoseconds.rounded()))
    }

    public static func duration(_ text: String) -> Duration? { duration(text[...]) }

    /// `64MB`, `4MB`, `512KB`, `1GB`, `1024` (bytes). Powers of 1024, as users mean for memory.
    public static func byteSize(_ text: String) -> Int? {
        let trimmed = text[...].trimmingSpaces()
        guard let (number, afterNumber) = leadingNumber(trimmed), number >= 0 else { return nil }
        let unit = afterNumber.trimmingSpaces().uppercased()
        let scale: Double
        switch unit {
        case "", "B": scale = 1
        case "KB", "K", "KIB": scale = 1024
        case "MB", "M", "MIB": scale = 1024 * 1024
        case "GB", "G", "GIB": scale = 1024 * 1024 * 1024
        default: return nil
        }
        let value = number * scale
        guard value.isFinite, value < 1e15 else { return nil }
        return Int(value.rounded())
    }

    /// `5%` or a fraction `0.05`; returns the fraction.
    public static func fraction(_ text: String) -> Double? {
        let trimmed = text[...].trimmingSpaces()
        if trimmed.hasSuffix("%") {
            guard let value = Double(trimmed.dropLast().trimmingSpaces()) else { return nil }
            return value / 100
        }
        return Double(trimmed)
    }

    /// A leading decimal number and what follows it.
    static func leadingNumber(_ text: Substring) -> (Double, Substring)? {
        var end = text.startIndex
        var sawDigit = false
        var sawDot = false
        while end < text.endIndex {
            let c = text[end]
            if c.isASCII, c.isNumber {
                sawDigit = true
            } else if c == ".", !sawDot {
                sawDot = true
            } else {
                break
            }
            end = text.index(after: end)
        }
        guard sawDigit, let value = Double(text[text.startIndex..<end]) else { return nil }
        return (value, text[end...])
    }
}

extension String {
    /// Whether the string starts with `lowercasePrefix` in any ASCII case, without the copy `lowercased()` makes:
    /// for header values and names read on every request.
    public func hasPrefixIgnoringASCIICase(_ lowercasePrefix: StaticString) -> Bool {
        matchesIgnoringASCIICase(lowercasePrefix, whole: false)
    }

    /// Whether the string is `lowercase` in any ASCII case, without a lowercased copy: for header names.
    public func equalsIgnoringASCIICase(_ lowercase: StaticString) -> Bool {
        matchesIgnoringASCIICase(lowercase, whole: true)
    }

    /// Compares the string's first bytes (all of them when `whole`) with `lowercase`, folding ASCII upper case.
    private func matchesIgnoringASCIICase(_ lowercase: StaticString, whole: Bool) -> Bool {
        var text = self
        return text.withUTF8 { bytes in
            let count = lowercase.utf8CodeUnitCount
            guard whole ? bytes.count == count : bytes.count >= count else { return false }
            let expected = lowercase.utf8Start
            for index in 0..<count {
                let byte = bytes[index]
                let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                if lower != expected[index] { return false }
            }
            return true
        }
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

extension Duration {
    /// The shortest way a user would write this duration (`5m`, `300ms`, `1.5s`).
    public var configText: String {
        let ns = nanoseconds
        if ns == 0 { return "0s" }
        if ns % 3_600_000_000_000 == 0 { return "\(ns / 3_600_000_000_000)h" }
        if ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        return "\(Double(ns) / 1e9)s"
    }
}
