/// A value of a client's request together with the path that names it (`messages[2].content[0].type`), so
/// that every refusal says exactly which field is wrong, as Anthropic's own errors do.
struct RequestField {
    let value: JSONTree
    let path: String

    func refuse(_ problem: String) -> AnthropicError {
        .invalidRequest(path.isEmpty ? problem : "\(path): \(problem)")
    }

    var isNull: Bool { value == .null }

    func string() throws(AnthropicError) -> String {
        guard case .string(let s) = value else { throw refuse("expected a string, got \(value.kindName)") }
        return s
    }

    func bool() throws(AnthropicError) -> Bool {
        guard case .bool(let b) = value else { throw refuse("expected true or false, got \(value.kindName)") }
        return b
    }

    /// A number as written, for forwarding.
    func number() throws(AnthropicError) -> String {
        guard case .number(let n) = value else { throw refuse("expected a number, got \(value.kindName)") }
        return n
    }

    func integer() throws(AnthropicError) -> Int {
        guard case .number(let n) = value, let int = Int(n) else { throw refuse("expected a whole number, got \(value.kindName)") }
        return int
    }

    func array() throws(AnthropicError) -> [RequestField] {
        guard case .array(let items) = value else { throw refuse("expected an array, got \(value.kindName)") }
        return items.enumerated().map { RequestField(value: $0.element, path: "\(path)[\($0.offset)]") }
    }

    func object() throws(AnthropicError) -> RequestObject {
        guard case .object(let members) = value else { throw refuse("expected an object, got \(value.kindName)") }
        return RequestObject(members: members, path: path)
    }
}

/// An object of a client's request, read field by field.
struct RequestObject {
    let members: [JSONTree.Member]
    let path: String

    private func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The field, when present and not null (Anthropic's SDKs send `null` for an unset optional field).
    func optional(_ key: String) -> RequestField? {
        guard let member = members.last(where: { $0.key == key }), member.value != .null else { return nil }
        return RequestField(value: member.value, path: childPath(key))
    }

    func required(_ key: String) throws(AnthropicError) -> RequestField {
        guard let field = optional(key) else { throw AnthropicError.invalidRequest("\(childPath(key)): Field required") }
        return field
    }

    /// Refuses fields outside `known`, as Anthropic does ("Extra inputs are not permitted").
    func refuseUnknown(_ known: Set<String>) throws(AnthropicError) {
        if let extra = members.first(where: { !known.contains($0.key) }) {
            throw AnthropicError.invalidRequest("\(childPath(extra.key)): Extra inputs are not permitted")
        }
    }
}

extension JSONTree {
    /// The JSON type's name, for "expected a string, got an array".
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
