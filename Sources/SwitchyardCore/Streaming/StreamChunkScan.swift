#if canImport(Glibc)
import Glibc
#endif

/// What the gateway needs from one `chat.completion.chunk` event, read in one validating pass.
public struct StreamChunk: Sendable, Equatable {
    /// Text of `choices[0].delta.content`, decoded.
    public var content: String = ""
    public var hasContent: Bool { !content.isEmpty }
    public var finishReason: String?
    /// A top-level `error` object or `finish_reason: "error"`: the upstream failed mid-stream.
    public var isError = false
    /// A usage chunk (`usage` present; usually `choices: []`).
    public var hasUsage = false
    /// `delta.tool_calls` present: tool-call output counts as output started.
    public var hasToolCalls = false
    /// Output the client must see: text, a tool call, a finish or usage (a role-only chunk is not).
    public var isOutput: Bool { hasContent || hasToolCalls || finishReason != nil || hasUsage }
    public var id: String?
    public var model: String?
    public var created: Int?
    /// The raw `usage` object, kept for an answer stored in the cache.
    public var usageJSON: String?

    public init() {}
}

public enum StreamChunkScan {
    /// `[DONE]`, the stream's last word.
    public static func isDone(_ event: [UInt8]) -> Bool {
        event.count == 6 && event == Array("[DONE]".utf8)
    }

    /// Scans an event's JSON; nil when it is not valid JSON (a malformed event is never forwarded).
    public static func scan(_ event: [UInt8]) -> StreamChunk? {
        event.withUnsafeBytes { raw in
            var reader = JSONReader(bytes: raw)
            return reader.chunk()
        }
    }

    /// Whether `bytes` hold exactly one valid JSON value.
    public static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = JSONReader(bytes: raw)
            return reader.validDocument()
        }
    }
}

/// A small validating JSON reader shared by the stream scan: walks the document once, decoding only the
/// strings asked for.
struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    var i = 0
    static let maxDepth = 64

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func validDocument() -> Bool {
        skipSpace()
        guard skipValue(depth: 0) else { return false }
        skipSpace()
        return i == bytes.count
    }

    mutating func chunk() -> StreamChunk? {
        var out = StreamChunk()
        skipSpace()
        guard peek() == UInt8(ascii: "{") else { return nil }
        let ok = fields(depth: 0) { reader, key in
            switch key {
            case "error":
                out.isError = true
                return reader.skipValue(depth: 1)
            case "usage":
                out.hasUsage = reader.peek() == UInt8(ascii: "{")
                let start = reader.i
                guard reader.skipValue(depth: 1) else { return false }
                if out.hasUsage { out.usageJSON = String(decoding: UnsafeRawBufferPointer(rebasing: reader.bytes[start..<reader.i]), as: UTF8.self) }
                return true
            case "id":
                guard reader.peek() == UInt8(ascii: "\"") else { return reader.skipValue(depth: 1) }
                out.id = reader.string()
                return out.id != nil
            case "model":
                guard reader.peek() == UInt8(ascii: "\"") else { return reader.skipValue(depth: 1) }
                out.model = reader.string()
                return out.model != nil
            case "created":
                let start = reader.i
                guard reader.skipValue(depth: 1) else { return false }
                out.created = Int(String(decoding: UnsafeRawBufferPointer(rebasing: reader.bytes[start..<reader.i]), as: UTF8.self))
                return true
            case "choices":
                return reader.choices(&out)
            default:
                return reader.skipValue(depth: 1)
            }
        }
        guard ok else { return nil }
        skipSpace()
        return i == bytes.count ? out : nil
    }

    mutating func choices(_ out: inout StreamChunk) -> Bool {
        guard peek() == UInt8(ascii: "[") else { return skipValue(depth: 1) }
        var index = 0
        return array(depth: 1) { reader in
            defer { index += 1 }
            guard index == 0, reader.peek() == UInt8(ascii: "{") else { return reader.skipValue(depth: 2) }
            return reader.fields(depth: 2) { reader, key in
                switch key {
                case "delta":
                    return reader.fields(depth: 3) { reader, key in
                        if key == "content", reader.peek() == UInt8(ascii: "\"") {
                            guard let text = reader.string() else { return false }
                            out.content = text
                            return true
                        }
                        if key == "tool_calls" { out.hasToolCalls = true }
                        return reader.skipValue(depth: 4)
                    }
                case "finish_reason":
                    if reader.peek() == UInt8(ascii: "\"") {
                        guard let reason = reader.string() else { return false }
                        out.finishReason = reason
                        if reason == "error" { out.isError = true }
                        return true
                    }
                    return reader.skipValue(depth: 3)
                case "error":
                    out.isError = true
                    return reader.skipValue(depth: 3)
                default:
                    return reader.skipValue(depth: 3)
                }
            }
        }
    }

    /// Walks an array, handing each element to `element` positioned at it.
    mutating func array(depth: Int, _ element: (inout JSONReader) -> Bool) -> Bool {
        guard depth <= Self.maxDepth, peek() == UInt8(ascii: "[") else { return false }
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            i += 1
            return true
        }
        while true {
            skipSpace()
            guard element(&self) else { return false }
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard peek() == UInt8(ascii: "]") else { return false }
            i += 1
            return true
        }
    }

    /// Walks an object, handing each field to `field` positioned at its value, with its key as a `String`.
    mutating func object(depth: Int, _ field: (inout JSONReader, String) -> Bool) -> Bool {
        fields(depth: depth) { reader, key in field(&reader, key.string) }
    }

    /// Walks an object, handing each field to `field` positioned at its value, with its key as it stands in the
    /// text: comparing it with a literal makes no `String` (the per-event scan of a stream compares several).
    mutating func fields(depth: Int, _ field: (inout JSONReader, JSONKey) -> Bool) -> Bool {
        guard depth <= Self.maxDepth, peek() == UInt8(ascii: "{") else { return false }
        i += 1
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            i += 1
            return true
        }
        while true {
            skipSpace()
            guard let (range, escaped) = skipString() else { return false }
            let key = JSONKey(raw: UnsafeRawBufferPointer(rebasing: bytes[range]), escaped: escaped)
            skipSpace()
            guard peek() == UInt8(ascii: ":") else { return false }
            i += 1
            skipSpace()
            guard field(&self, key) else { return false }
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard peek() == UInt8(ascii: "}") else { return false }
            i += 1
            return true
        }
    }

    mutating func skipValue(depth: Int) -> Bool {
        guard depth <= Self.maxDepth, let c = peek() else { return false }
        switch c {
        case UInt8(ascii: "\""):
            return skipString() != nil
        case UInt8(ascii: "{"):
            return fields(depth: depth + 1) { reader, _ in reader.skipValue(depth: depth + 2) }
        case UInt8(ascii: "["):
            return array(depth: depth) { reader in reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default:
            return number()
        }
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return false }
        i += n
        return true
    }

    mutating func number() -> Bool {
        let start = i
        if peek() == UInt8(ascii: "-") { i += 1 }
        var digits = 0
        while let c = peek(), (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
        {
            if c >= 0x30 && c <= 0x39 { digits += 1 }
            i += 1
        }
        return digits > 0 && i > start
    }

    /// Moves past a string; returns its raw range and whether it had escapes.
    mutating func skipString() -> (Range<Int>, Bool)? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        i += 1
        let start = i
        var escaped = false
        while i < bytes.count {
            i += PlainRun.length(in: bytes, from: i, asciiOnly: false)
            guard i < bytes.count else { break }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let range = start..<i
                i += 1
                return (range, escaped)
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                i += 2
                continue
            }
            if c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    mutating func string() -> String? {
        guard let (range, escaped) = skipString() else { return nil }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[range])
        guard escaped else { return String(decoding: raw, as: UTF8.self) }
        return JSONUnescape.string(raw)
    }
}

/// An object's key as it stands in the JSON text (without its quotes), compared with literals in place.
struct JSONKey {
    let raw: UnsafeRawBufferPointer
    /// Holds an escape: compared through its decoded `String` (rare; keys seldom need escapes).
    let escaped: Bool

    var string: String { escaped ? JSONUnescape.string(raw) : String(decoding: raw, as: UTF8.self) }

    /// Length, then first byte, then the rest: a `switch` over keys compares each with several literals.
    @inline(__always)
    static func == (key: JSONKey, literal: StaticString) -> Bool {
        guard !key.escaped else { return key.string == literal.description }
        let count = key.raw.count
        guard count == literal.utf8CodeUnitCount else { return false }
        guard count > 0, let base = key.raw.baseAddress else { return true }
        guard base.load(as: UInt8.self) == literal.utf8Start.pointee else { return false }
        return memcmp(base, literal.utf8Start, count) == 0
    }

    static func ~= (literal: StaticString, key: JSONKey) -> Bool { key == literal }

    /// Whether the key's text is `name`'s bytes.
    func matches(_ name: [UInt8]) -> Bool {
        escaped ? string.utf8.elementsEqual(name) : raw.elementsEqual(name)
    }
}

enum JSONUnescape {
    /// Decodes a JSON string body (without quotes); invalid escapes become U+FFFD rather than failing.
    static func string(_ raw: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var j = 0
        func hex(_ at: Int) -> UInt32? {
            guard at + 4 <= raw.count else { return nil }
            var v: UInt32 = 0
            for k in at..<(at + 4) {
                let c = raw[k]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        while j < raw.count {
            // The text up to the next escape is copied whole.
            let plain = PlainRun.append(in: raw, from: j, asciiOnly: false, to: &out)
            if plain > 0 {
                j += plain
                continue
            }
            let c = raw[j]
            guard c == UInt8(ascii: "\\"), j + 1 < raw.count else {
                out.append(c)
                j += 1
                continue
            }
            let e = raw[j + 1]
            j += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard var scalar = hex(j) else {
                    out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                    continue
                }
                j += 4
                if scalar >= 0xD800 && scalar < 0xDC00, j + 6 <= raw.count, raw[j] == UInt8(ascii: "\\"), raw[j + 1] == UInt8(ascii: "u"),
                    let low = hex(j + 2), low >= 0xDC00 && low < 0xE000
                {
                    j += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
            default:
                out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
