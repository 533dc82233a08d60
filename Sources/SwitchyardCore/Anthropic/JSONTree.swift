/// A JSON document as a tree whose objects keep their fields in the order they were written.
///
/// The Anthropic translation reads a whole request or answer and writes another shape, so unlike the routing
/// scan it needs a tree. Order matters: a tool's `input_schema` goes on to a model, which tends to fill
/// arguments in the order the schema lists them, and a tree built from a Swift dictionary would reorder them
/// differently in every process (and change the cache key with it). Numbers stay as written, so they are
/// forwarded digit for digit.
indirect enum JSONTree: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONTree])
    case object([Member])

    struct Member: Sendable, Equatable {
        var key: String
        var value: JSONTree
    }

    /// A client's document: validated first with the routing scan's strict rules (escapes, UTF-8, numbers,
    /// depth), so what the tree holds can be written back as valid JSON.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(RequestScanError) -> JSONTree {
        try ChatRequestScan.validateJSON(bytes)
        guard let tree = read(bytes) else { throw RequestScanError(message: "invalid JSON", offset: nil) }
        return tree
    }

    /// An upstream's document, read without the strict checks; nil when it is not JSON.
    static func read(_ bytes: UnsafeRawBufferPointer) -> JSONTree? {
        var reader = JSONReader(bytes: bytes)
        reader.skipSpace()
        guard let tree = reader.tree(depth: 0) else { return nil }
        reader.skipSpace()
        return reader.i == bytes.count ? tree : nil
    }

    static func read(_ bytes: [UInt8]) -> JSONTree? {
        bytes.withUnsafeBytes { read($0) }
    }

    // MARK: reading an upstream's answer

    /// The value of `key` in an object (the last one, if the key repeats); nil for anything else.
    subscript(key: String) -> JSONTree? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var array: [JSONTree]? {
        if case .array(let a) = self { return a }
        return nil
    }

    var int: Int? {
        guard case .number(let n) = self else { return nil }
        return Int(n) ?? Double(n).flatMap { $0.isFinite && $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil }
    }

    var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    // MARK: writing

    /// Compact JSON text.
    var json: String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): out += JSONText.quoted(s)
        case .array(let items):
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (n, member) in members.enumerated() {
                if n > 0 { out += "," }
                out += JSONText.quoted(member.key)
                out += ":"
                member.value.write(to: &out)
            }
            out += "}"
        }
    }
}

extension JSONReader {
    /// The value at the reader as a tree; nil when it is not valid JSON.
    mutating func tree(depth: Int) -> JSONTree? {
        switch peek() {
        case UInt8(ascii: "{"):
            var members: [JSONTree.Member] = []
            let ok = object(depth: depth) { reader, key in
                guard let value = reader.tree(depth: depth + 1) else { return false }
                members.append(JSONTree.Member(key: key, value: value))
                return true
            }
            return ok ? .object(members) : nil
        case UInt8(ascii: "["):
            var items: [JSONTree] = []
            let ok = array(depth: depth) { reader in
                guard let value = reader.tree(depth: depth + 1) else { return false }
                items.append(value)
                return true
            }
            return ok ? .array(items) : nil
        case UInt8(ascii: "\""):
            return string().map { .string($0) }
        case UInt8(ascii: "t"):
            return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"):
            return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"):
            return literal("null") ? .null : nil
        case nil:
            return nil
        default:
            let start = i
            guard number() else { return nil }
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        }
    }
}
