import Testing

@testable import SwitchyardCore

struct AnthropicRequestTests {
    func translate(_ json: String, for purpose: AnthropicRequest.Purpose = .messages) throws -> AnthropicRequest {
        let request = try AnthropicRequest.translate(Array(json.utf8), for: purpose)
        // Whatever the translation writes must pass the chat completions scan, strict checks included.
        _ = try ChatRequestScan.scan(request.body)
        return request
    }

    func body(_ request: AnthropicRequest) -> String { String(decoding: request.body, as: UTF8.self) }

    @Test func plainTextWithASystemString() throws {
        let request = try translate(
            #"{"model":"auto","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"Bye"}]}"#
        )
        #expect(
            body(request)
                == #"{"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"Bye"}],"max_tokens":100}"#
        )
        #expect(request.model == "auto")
        #expect(request.maxTokens == 100)
        #expect(!request.stream)
        #expect(request.stopSequences.isEmpty)
    }

    @Test func systemBlocksAreJoinedAndCacheControlIgnored() throws {
        let request = try translate(
            #"{"model":"m","max_tokens":5,"system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Answer in French.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]}]}"#
        )
        #expect(
            body(request)
                == #"{"model":"m","messages":[{"role":"system","content":"You are terse.\nAnswer in French."},{"role":"user","content":"Hi"}],"max_tokens":5}"#
        )
    }

    @Test func everyFieldOfAToolConversation() throws {
        let request = try translate(
            #"""
            {"model":"quality","max_tokens":256,"stream":true,"temperature":0.5,"top_p":0.9,"top_k":40,"stop_sequences":["END","STOP"],
             "metadata":{"user_id":"u-1"},
             "tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string"}},"required":["city"]}}],
             "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
             "messages":[
              {"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"x"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","unit":"C"}},{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Lyon"}}]},
              {"role":"user","content":[{"type":"text","text":"Also this:"},{"type":"tool_result","tool_use_id":"toolu_1","content":"18 C"},{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"20 C"},{"type":"image","source":{"type":"url","url":"https://x.test/map.png"}}],"is_error":false}]}
             ]}
            """#)
        let expected =
            #"{"model":"quality","messages":["#
            + #"{"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},"#
            + #"{"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"C\"}"}},{"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Lyon\"}"}}]},"#
            + #"{"role":"tool","tool_call_id":"toolu_1","content":"18 C"},"#
            + #"{"role":"tool","tool_call_id":"toolu_2","content":"20 C"},"#
            + #"{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x.test/map.png"}},{"type":"text","text":"Also this:"}]}"#
            + #"],"max_tokens":256,"stop":["END","STOP"],"temperature":0.5,"top_p":0.9,"user":"u-1","stream":true,"stream_options":{"include_usage":true},"#
            + #""tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string"}},"required":["city"]}}}],"#
            + #""tool_choice":"auto","parallel_tool_calls":false}"#
        #expect(body(request) == expected)
        #expect(request.stream)
        #expect(request.stopSequences == ["END", "STOP"])
    }

    @Test func toolResultsOnlyAndErrorsSayWhatFailed() throws {
        let request = try translate(
            #"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[{"type":"tool_use","id":"call_9","name":"run","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_9","is_error":true,"content":"exit 1"},{"type":"tool_result","tool_use_id":"call_10"}]}]}"#
        )
        #expect(
            body(request)
                == #"{"model":"m","messages":[{"role":"user","content":"go"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"run","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_9","content":"Error: exit 1"},{"role":"tool","tool_call_id":"call_10","content":""}],"max_tokens":9}"#
        )
    }

    @Test(arguments: [
        (#"{"type":"any"}"#, #""tool_choice":"required"}"#),
        (#"{"type":"none"}"#, #""tool_choice":"none"}"#),
        (#"{"type":"tool","name":"f"}"#, #""tool_choice":{"type":"function","function":{"name":"f"}}}"#),
        (#"{"type":"auto"}"#, #""tool_choice":"auto"}"#),
    ])
    func toolChoice(choice: String, expectedEnd: String) throws {
        let request = try translate(
            #"{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":\#(choice),"messages":[{"role":"user","content":"x"}]}"#
        )
        #expect(body(request).hasSuffix(#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"# + expectedEnd))
    }

    @Test func aToolChoiceWithoutToolsIsDropped() throws {
        let request = try translate(#"{"model":"m","max_tokens":1,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"x"}]}"#)
        #expect(body(request) == #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1}"#)
    }

    @Test func fieldsAnthropicAcceptsButNoUpstreamHasAreLeftOut() throws {
        let request = try translate(
            #"{"model":"m","max_tokens":1,"top_k":5,"thinking":{"type":"enabled","budget_tokens":1024},"service_tier":"auto","metadata":{"user_id":null},"system":[],"stop_sequences":[],"messages":[{"role":"user","content":"x"}]}"#
        )
        #expect(body(request) == #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1}"#)
    }

    @Test func escapesAndNumbersSurviveAsWritten() throws {
        let request = try translate(
            #"{"model":"m","max_tokens":1,"temperature":1e-1,"messages":[{"role":"user","content":"a \"quote\" \u00e9\n"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"z":1.50,"a":[true,null,"x"]}}]}]}"#
        )
        #expect(
            body(request)
                == #"{"model":"m","messages":[{"role":"user","content":"a \"quote\" é\n"},{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"z\":1.50,\"a\":[true,null,\"x\"]}"}}]}],"max_tokens":1,"temperature":1e-1}"#
        )
    }

    @Test(arguments: [
        (#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, "max_tokens: Field required"),
        (#"{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}"#, "model: Field required"),
        (#"{"model":"m","max_tokens":1}"#, "messages: Field required"),
        (#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#, "max_tokens: must be at least 1"),
        (#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}"#, "max_tokens: expected a whole number, got a string"),
        (#"{"model":"m","max_tokens":1,"messages":[]}"#, "messages: at least one message is required"),
        (#"{"model":"m","max_tokens":1,"messages":{}}"#, "messages: expected an array, got an object"),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"n":2}"#, "n: Extra inputs are not permitted"),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"wizard","content":"x"}]}"#, "messages[0].role: 'wizard' is not one of user, assistant"),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#,
            "messages[0].role: 'system' is not a message role; put the system prompt in the top-level 'system' field"
        ),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x","name":"n"}]}"#, "messages[0].name: Extra inputs are not permitted"),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#, "messages[0].content: Field required"),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":5}]}"#,
            "messages[0].content: expected a string or an array of content blocks, got a number"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"c"},{"type":"video"}]}]}"#,
            "messages[2].content[1].type: 'video' is not a supported content block type (text, image, tool_use, tool_result)"
        ),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"c"}]}]}"#, "messages[0].content[0].type: Field required"),
        (#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":7}]}]}"#, "messages[0].content[0].text: expected a string, got a number"),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]}"#,
            "messages[0].content[0].type: 'tool_use' blocks belong in assistant messages"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]}"#,
            "messages[0].content[0].type: 'tool_result' blocks belong in user messages"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":"{}"}]}]}"#,
            "messages[0].content[0].input: expected an object, got a string"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"document"}]}]}]}"#,
            "messages[0].content[0].content[0].type: 'document' is not supported in a tool_result; use text or image blocks"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
            "messages[0].content[0].source.type: 'file' image sources are not supported; use base64 or url"
        ),
        (
            #"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AA=="}}]}]}"#,
            "messages[0].content[0].source.media_type: Field required"
        ),
        (#"{"model":"m","max_tokens":1,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}"#, "system[0].type: 'image' is not allowed in 'system'; use text blocks"),
        (#"{"model":"m","max_tokens":1,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]}"#, "tools[0].input_schema: Field required"),
        (
            #"{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}"#,
            "tools[0].type: 'web_search_20250305' is one of Anthropic's own server tools, which this gateway cannot run; declare a custom tool with name, description and input_schema"
        ),
        (
            #"{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"some"},"messages":[{"role":"user","content":"x"}]}"#,
            "tool_choice.type: 'some' is not one of auto, any, tool, none"
        ),
        (#"{"model":"m","max_tokens":1,"metadata":{"user":"u"},"messages":[{"role":"user","content":"x"}]}"#, "metadata.user: Extra inputs are not permitted"),
        (#"{"model":"m","max_tokens":1,"stream":"yes","messages":[{"role":"user","content":"x"}]}"#, "stream: expected true or false, got a string"),
        (#"{"model":"m","max_tokens":1,"stop_sequences":["a",1],"messages":[{"role":"user","content":"x"}]}"#, "stop_sequences[1]: expected a string, got a number"),
        ("[1]", "the body must be a JSON object"),
    ])
    func refusesNamingTheField(body: String, expected: String) {
        let error = #expect(throws: AnthropicError.self) { try AnthropicRequest.translate(Array(body.utf8)) }
        #expect(error?.message == expected)
        #expect(error?.status == 400)
        #expect(error?.type == "invalid_request_error")
    }

    @Test func invalidJSONIsRefusedWithTheScansReason() {
        let error = #expect(throws: AnthropicError.self) { try AnthropicRequest.translate(Array(#"{"model":"m","#.utf8)) }
        #expect(error?.message.hasPrefix("the body is not valid JSON: ") == true, "\(error?.message ?? "")")
        #expect(error?.json.hasPrefix(#"{"type":"error","error":{"type":"invalid_request_error","message":"the body is not valid JSON"#) == true)
    }

    @Test func countTokensIsTheRoutingEstimateOfTheTranslation() throws {
        // No max_tokens: count_tokens takes none. The estimate of this one message is 13 (see TokenEstimateTests).
        let counted = try AnthropicRequest.countTokens(Array(#"{"model":"auto","messages":[{"role":"user","content":"Hello there!"}]}"#.utf8))
        #expect(counted.inputTokens == 13)
        #expect(String(decoding: counted.json, as: UTF8.self) == #"{"input_tokens":13}"#)

        let withTools = Array(
            #"{"model":"auto","system":"Be brief.","tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"Hello there!"}]}"#
                .utf8)
        let request = try AnthropicRequest.translate(withTools, for: .countTokens)
        #expect(try AnthropicRequest.countTokens(withTools).inputTokens == ChatRequestScan.scan(request.body).estimatedPromptTokens)
        #expect(try AnthropicRequest.countTokens(withTools).inputTokens > 13)
    }
}
