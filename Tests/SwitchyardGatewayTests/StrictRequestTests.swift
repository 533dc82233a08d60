import Foundation
import Testing

/// Requests every provider would refuse are refused by the gateway, with a 400 that names the field, before
/// they spend a (free-tier) upstream request.
@Suite struct StrictRequestTests {
    @Test(arguments: [
        (
            #"{"model":"auto","messages":[{"role":"user","content":"hi"},{"role":"wizard","content":"abracadabra"}]}"#,
            "messages[1].role: 'wizard' is not one of system, developer, user, assistant, tool, function"
        ),
        (
            #"{"model":"auto","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"42"}]}"#,
            "messages[2].tool_call_id: required for a 'tool' message"
        ),
        (
            #"{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"video_url","video_url":{"url":"https://x.test/v.mp4"}}]}]}"#,
            "messages[0].content[1].type: 'video_url' is not one of text, image_url, input_audio, file, refusal"
        ),
    ])
    func refusedBeforeTheUpstream(body: String, message: String) async throws {
        try await withHarness { h in
            for stream in [false, true] {
                let sent = stream ? body.replacingOccurrences(of: #"{"model":"auto","#, with: #"{"model":"auto","stream":true,"#) : body
                let reply = try await h.post(sent)
                #expect(reply.status == 400, "\(reply.body)")
                let error = try #require(try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: [String: Any]])
                #expect(error["error"]?["type"] as? String == "invalid_request_error")
                #expect((error["error"]?["message"] as? String)?.hasPrefix(message) == true, "\(reply.body)")
            }
            #expect(h.upstreamRequests().isEmpty)
            // The gateway still serves the next request.
            #expect(try await h.post(chat()).status == 200)
            #expect(h.upstreamRequests().count == 1)
        }
    }
}
