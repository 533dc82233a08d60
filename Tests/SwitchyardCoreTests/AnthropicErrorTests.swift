import Testing

@testable import SwitchyardCore

struct AnthropicErrorTests {
    @Test(arguments: [
        (400, 400, "invalid_request_error"), (401, 401, "authentication_error"), (402, 402, "billing_error"), (403, 403, "permission_error"),
        (404, 404, "not_found_error"), (413, 413, "request_too_large"), (415, 415, "invalid_request_error"), (429, 429, "rate_limit_error"),
        (500, 500, "api_error"), (502, 502, "api_error"), (503, 529, "overloaded_error"), (504, 504, "api_error"),
    ])
    func statusesAndTypes(gateway: Int, status: Int, type: String) {
        let error = AnthropicError.from(status: gateway, message: "m")
        #expect(error.status == status)
        #expect(error.type == type)
        #expect(error.message == "m")
    }

    @Test func theShapeAnthropicsClientsRead() {
        let error = AnthropicError.from(status: 503, message: "no key is usable \"now\"")
        #expect(error.json == #"{"type":"error","error":{"type":"overloaded_error","message":"no key is usable \"now\""}}"#)
        #expect(error.body == Array(error.json.utf8))
        #expect(String(decoding: error.sseEvent, as: UTF8.self) == "event: error\ndata: \(error.json)\n\n")
    }

    @Test(arguments: [
        (#"{"error":{"message":"context too long","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}"#, "context too long"),
        (#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min","metadata":{}}}"#, "Rate limit exceeded: free-models-per-min"),
        (#"[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]"#, "Resource has been exhausted"),
        (#"{"error":"plain words"}"#, "plain words"),
        ("<html>bad gateway</html>", "the upstream answered with status 429"),
    ])
    func openAIBodies(body: String, message: String) {
        let error = AnthropicError.from(status: 429, openAIBody: Array(body.utf8))
        #expect(error == AnthropicError(status: 429, type: "rate_limit_error", message: message))
    }
}
