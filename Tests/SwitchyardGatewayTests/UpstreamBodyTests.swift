import NIOCore
import SwitchyardCore
import Testing
@testable import SwitchyardGateway

struct UpstreamBodyTests {
    func build(_ body: String, defaults: [String: String] = [:], prefill: String? = nil) throws -> String {
        let summary = try ChatRequestScan.scan(body)
        let out = UpstreamBody.build(
            original: ByteBuffer(string: body), summary: summary, upstreamModel: Array(#""vendor/model:free""#.utf8), defaults: defaults,
            prefill: prefill)
        return String(buffer: out)
    }

    @Test func onlyTheModelIsRewritten() throws {
        let body = #"{"model":"auto",  "messages":[{"role":"user","content":"hi"}],"x_unknown":{"keep":[1,2]},"temperature":1}"#
        #expect(try build(body) == #"{"model":"vendor/model:free",  "messages":[{"role":"user","content":"hi"}],"x_unknown":{"keep":[1,2]},"temperature":1}"#)
    }

    @Test func defaultsFillOnlyWhatTheClientLeftOut() throws {
        let body = #"{"messages":[{"role":"user","content":"hi"}],"temperature":1,"model":"quality"}"#
        let out = try build(body, defaults: ["temperature": "0.3", "top_p": "0.9"])
        #expect(out == #"{"messages":[{"role":"user","content":"hi"}],"temperature":1,"model":"vendor/model:free","top_p":0.9}"#)
    }

    @Test func aContinuationAppendsTheAssistantPrefill() throws {
        let body = #"{"model":"auto","messages":[{"role":"user","content":"hi"}],"stream":true}"#
        let out = try build(body, prefill: "Partial \"answer\"")
        #expect(out == #"{"model":"vendor/model:free","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Partial \"answer\""}],"stream":true}"#)
    }
}
