#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension RequestScanner {
    func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    func fail(_ message: String) -> RequestScanError {
        RequestScanError(message: i >= bytes.count ? "\(message); the body ended early" : message, offset: min(i, bytes.count))
    }

    mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ message: String? = nil) throws(RequestScanError) {
        guard peek() == byte else {
            throw fail(message ?? "invalid JSON: expected '\(Character(Unicode.Scalar(byte)))'")
        }
        i += 1
    }

    /// Exactly one JSON value, with nothing after it.
    mutating func document() throws(RequestScanError) {
        skipSpace()
        if i >= bytes.count { throw RequestScanError(message: "the body is empty", offset: nil) }
        var ignored = TokenEstimate.TextCost()
        try value(depth: 1, cost: &ignored)
        skipSpace()
        if i < bytes.count { throw fail("unexpected data after the JSON value") }
    }

    /// After a member of an object or array: true when a `,` follows, false (past it) at the closing `close`;
    /// anything else fails with `message`, by default the generic one.
    mutating func another(_ close: UInt8, _ message: String? = nil) throws(RequestScanError) -> Bool {
        skipSpace()
        if peek() == UInt8(ascii: ",") {
            i += 1
            return true
        }
        try expect(close, message ?? "invalid JSON: expected ',' or '\(Character(Unicode.Scalar(close)))'")
        return false
    }

    /// After a field's name: past the `:` and the space around it, onto the field's value.
    mutating func toFieldValue() throws(RequestScanError) {
        skipSpace()
        try expect(UInt8(ascii: ":"))
        skipSpace()
    }

    mutating func literal(_ word: StaticString) throws(RequestScanError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, word.utf8Start, n) == 0 else {
            throw fail("invalid JSON value")
        }
        i += n
    }

    /// Any JSON value; string contents are charged to `cost`.
    mutating func value(depth: Int, cost: inout TokenEstimate.TextCost) throws(RequestScanError) {
        guard depth <= ChatRequestScan.maxDepth else {
            throw fail("JSON nested deeper than \(ChatRequestScan.maxDepth) levels")
        }
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try skipString(cost: &cost)
        case UInt8(ascii: "{"):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                i += 1
                return
            }
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("invalid JSON: expected a field name") }
                _ = try skipString(cost: &cost)
                try toFieldValue()
                try value(depth: depth + 1, cost: &cost)
                guard try another(UInt8(ascii: "}")) else { return }
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                i += 1
                return
            }
            while true {
                skipSpace()
                try value(depth: depth + 1, cost: &cost)
                guard try another(UInt8(ascii: "]")) else { return }
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case .some(let c) where c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39):
            try number()
        default:
            throw fail("invalid JSON value")
        }
    }

    mutating func number() throws(RequestScanError) {
        let start = i
        if peek() == UInt8(ascii: "-") { i += 1 }
        guard let first = peek(), first >= 0x30, first <= 0x39 else { throw fail("invalid JSON number") }
        if first == 0x30 {
            i += 1
        } else {
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            i += 1
            guard let c = peek(), c >= 0x30, c <= 0x39 else { throw fail("invalid JSON number") }
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            i += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
            guard let c = peek(), c >= 0x30, c <= 0x39 else { throw fail("invalid JSON number") }
            while let c = peek(), c >= 0x30, c <= 0x39 { i += 1 }
        }
        if i - start > 400 { throw RequestScanError(message: "a number is too long", offset: start) }
    }

    /// A string decoded to Swift; used for field names and the few values routing reads.
    mutating func string(cost: UnsafeMutablePointer<TokenEstimate.TextCost>?) throws(RequestScanError) -> String {
        guard peek() == UInt8(ascii: "\"") else { throw fail("invalid JSON: expected a string") }
        var localCost = TokenEstimate.TextCost()
        let start = i + 1
        let hadEscape = try skipString(cost: &localCost)
        cost?.pointee += localCost
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<(i - 1)])
        if !hadEscape { return String(decoding: raw, as: UTF8.self) }
        return JSONUnescape.string(raw)
    }

    mutating func string(cost: inout TokenEstimate.TextCost) throws(RequestScanError) -> String {
        try withUnsafeMutablePointer(to: &cost) { p throws(RequestScanError) in try string(cost: p) }
    }

    /// Moves past a string, validating escapes and UTF-8; returns whether it held escapes.
    mutating func skipString(cost: inout TokenEstimate.TextCost) throws(RequestScanError) -> Bool {
        i += 1
        var hadEscape = false
        var ascii = 0
        var other = 0
        while i < bytes.count {
            let plain = PlainRun.length(in: bytes, from: i, asciiOnly: true)
            ascii += plain
            i += plain
            guard i < bytes.count else { break }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                cost.asciiBytes += ascii
                cost.otherBytes += other
                return hadEscape
            } else if c == UInt8(ascii: "\\") {
                hadEscape = true
                i += 1
                guard let e = peek() else { break }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                    ascii += 1
                case UInt8(ascii: "u"):
                    i += 1
                    let scalar = try hex4()
                    if scalar < 0x80 {
                        ascii += 1
                    } else if scalar < 0x800 {
                        other += 2
                    } else if scalar >= 0xD800 && scalar < 0xDC00 {
                        // High surrogate: must be followed by a low one; the pair is one 4-byte scalar.
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("invalid JSON string: unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid JSON string: unpaired surrogate") }
                        other += 4
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("invalid JSON string: unpaired surrogate")
                    } else {
                        other += 3
                    }
                default:
                    throw fail("invalid JSON string: bad escape")
                }
            } else if c < 0x20 {
                throw fail("invalid JSON string: control character")
            } else {
                let n = try utf8Sequence()
                other += n
            }
        }
        throw fail("invalid JSON: unterminated string")
    }

    mutating func hex4() throws(RequestScanError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("invalid JSON string: bad \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw fail("invalid JSON string: bad \\u escape")
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence at `i` and moves past it.
    mutating func utf8Sequence() throws(RequestScanError) -> Int {
        let c = bytes[i]
        let n: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; upper = 0x9F
        case 0xF0: n = 4; lower = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; upper = 0x8F
        default: throw fail("the body is not valid UTF-8")
        }
        guard i + n <= bytes.count else { throw fail("the body is not valid UTF-8") }
        let second = bytes[i + 1]
        guard second >= lower, second <= upper else { throw fail("the body is not valid UTF-8") }
        for k in 2..<max(2, n) where bytes[i + k] & 0xC0 != 0x80 {
            throw fail("the body is not valid UTF-8")
        }
        i += n
        return n
    }
}
