/// An Anthropic request's `tools` and `tool_choice` as chat completions `tools`, `tool_choice` and
/// `parallel_tool_calls`.
enum AnthropicTools {
    /// The fields to append to the chat completions body (each with its leading comma), or "" without tools.
    /// A `tool_choice` without tools is dropped: OpenAI-compatible upstreams refuse one.
    static func fields(tools: RequestField?, choice: RequestField?) throws(AnthropicError) -> String {
        let functions = try tools?.array().map { field throws(AnthropicError) in try function(field) } ?? []
        guard !functions.isEmpty else { return "" }
        var out = #","tools":[\#(functions.joined(separator: ","))]"#
        if let choice { out += try self.choice(choice) }
        return out
    }

    /// `{name, description, input_schema}` → `{"type":"function","function":{name, description, parameters}}`.
    static func function(_ field: RequestField) throws(AnthropicError) -> String {
        let tool = try field.object()
        if let typeField = tool.optional("type") {
            let type = try typeField.string()
            guard type == "custom" else {
                throw typeField.refuse(
                    "'\(type)' is one of Anthropic's own server tools, which this gateway cannot run; declare a custom tool with name, description and input_schema"
                )
            }
        }
        let name = try tool.required("name").string()
        let schema = try tool.required("input_schema")
        _ = try schema.object()
        var function = #"{"name":\#(JSONText.quoted(name))"#
        if let description = try tool.optional("description")?.string() { function += #","description":\#(JSONText.quoted(description))"# }
        function += #","parameters":\#(schema.value.json)}"#
        return #"{"type":"function","function":\#(function)}"#
    }

    /// `auto` → `"auto"`, `any` → `"required"`, `none` → `"none"`, `tool` → that function;
    /// `disable_parallel_tool_use: true` → `"parallel_tool_calls":false`.
    static func choice(_ field: RequestField) throws(AnthropicError) -> String {
        let choice = try field.object()
        let typeField = try choice.required("type")
        let value: String
        switch try typeField.string() {
        case "auto": value = #""auto""#
        case "any": value = #""required""#
        case "none": value = #""none""#
        case "tool":
            let name = try choice.required("name").string()
            value = #"{"type":"function","function":{"name":\#(JSONText.quoted(name))}}"#
        case let other:
            throw typeField.refuse("'\(other)' is not one of auto, any, tool, none")
        }
        var out = #","tool_choice":\#(value)"#
        if try choice.optional("disable_parallel_tool_use")?.bool() == true { out += #","parallel_tool_calls":false"# }
        return out
    }
}
