import HTTPTypes
import Hummingbird
import NIOCore
import SwitchyardCore

/// `POST /v1/messages` (Anthropic's Messages API) and `POST /v1/messages/count_tokens`.
///
/// The request is translated to a chat completion request, which then takes exactly the chat path's
/// admission, walk, cache and stream continuation; the answer goes back in Anthropic's shapes: a `message`,
/// its event stream, or `{"type":"error",…}` with Anthropic's statuses (529 where chat would answer 503).
/// Clients authenticate with `x-api-key` or `Authorization: Bearer`; `anthropic-version` is accepted as is.
struct MessagesRoute: Sendable {
    let chat: ChatCompletionsRoute

    static let apiKey = HTTPField.Name("x-api-key")!

    func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let started = Monotonic.now()
        let snapshot = chat.store.snapshot
        let table = snapshot.table
        let fields = AdmissionHeaders(Self.withBearer(request.headers))
        let slot: InFlightLimit.Slot
        switch chat.admitHead(fields, client: chat.clientIdentity(fields, channel: context.channel), table) {
        case .failure(let refusal): return Self.error(PlainAnswer(refusal))
        case .success(let admitted): slot = admitted
        }
        guard let bytes = try await Self.body(request, limit: table.server.maxBodyBytes) else {
            return Self.error(AnthropicError(status: 413, type: "request_too_large", message: "the request body is over the limit of \(table.server.maxBodyBytes) bytes"))
        }
        let translated: AnthropicRequest
        do {
            translated = try AnthropicRequest.translate(bytes)
        } catch {
            return Self.error(error)
        }
        let admission = chat.admitBody(
            fields, body: ByteBuffer(bytes: translated.body), snapshot: snapshot, channel: context.channel, watchesClient: true,
            slot: slot, started: started)
        let inputTokens = (try? ChatRequestScan.scan(translated.body).estimatedPromptTokens) ?? 0
        // A refusal comes back as a plain answer that is not 200, which `translate` gives in Anthropic's error shape.
        return Self.translate(await chat.respond(admission), translated, inputTokens: inputTokens)
    }

    /// `POST /v1/messages/count_tokens`: the gateway's own estimate of the prompt, the one routing uses.
    func countTokens(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let table = chat.store.snapshot.table
        let fields = Self.withBearer(request.headers)
        if let refusal = chat.auth.check(fields[.authorization]) { return Self.error(PlainAnswer(refusal)) }
        guard let bytes = try await Self.body(request, limit: table.server.maxBodyBytes) else {
            return Self.error(AnthropicError(status: 413, type: "request_too_large", message: "the request body is over the limit of \(table.server.maxBodyBytes) bytes"))
        }
        do {
            let counted = try AnthropicRequest.countTokens(bytes)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: counted.json)))
        } catch {
            return Self.error(error)
        }
    }

    /// The chat path's answer in Anthropic's shape: a message, an event stream, or an error.
    static func translate(_ answer: ChatCompletionsRoute.Dispatched, _ request: AnthropicRequest, inputTokens: Int) -> Response {
        switch answer {
        case .plain(let plain):
            guard plain.status == .ok else { return error(plain) }
            var fields = plain.fields
            if request.stream {
                // A hit replayed as a stream, or a route's last resort: whole events, translated at once.
                let events = AnthropicStream.translate(
                    sse: Array(plain.body.readableBytesView), model: request.model, inputTokens: inputTokens, stopSequences: request.stopSequences)
                fields[.contentType] = "text/event-stream"
                return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: events)))
            }
            guard
                let message = AnthropicAnswer.translate(
                    completion: Array(plain.body.readableBytesView), model: request.model, stopSequences: request.stopSequences,
                    estimatedInputTokens: inputTokens)
            else {
                return error(AnthropicError(status: 502, type: "api_error", message: "the upstream's answer could not be read as a chat completion"))
            }
            fields[.contentType] = "application/json"
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: message.body)))
        case .stream(let response):
            let stream = AnthropicStream(model: request.model, inputTokens: inputTokens, stopSequences: request.stopSequences)
            let original = response.body
            return Response(
                status: .ok, headers: response.headers,
                body: ResponseBody { writer in
                    try await original.write(AnthropicEventWriter(inner: writer, stream: stream))
                })
        }
    }

    /// The headers as the chat path reads them: an `x-api-key` counts as the bearer token it is.
    static func withBearer(_ headers: HTTPFields) -> HTTPFields {
        guard headers[.authorization] == nil, let key = headers[apiKey] else { return headers }
        var fields = headers
        fields[.authorization] = "Bearer " + key
        return fields
    }

    /// The whole body, or nil when it is over `limit`.
    static func body(_ request: Request, limit: Int) async throws -> [UInt8]? {
        var request = request
        do {
            return Array(try await request.collectBody(upTo: limit).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return nil
        }
    }

    /// A chat path error (OpenAI's shape) in Anthropic's, with its headers (`Retry-After`, `x-switchyard-*`).
    static func error(_ answer: PlainAnswer) -> Response {
        var response = error(AnthropicError.from(status: answer.status.code, openAIBody: Array(answer.body.readableBytesView)))
        for field in answer.fields where field.name != .contentType { response.headers.append(field) }
        return response
    }

    static func error(_ error: AnthropicError) -> Response {
        Response(
            status: .init(code: error.status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: error.body)))
    }
}

/// Writes the chat path's stream (OpenAI events as the relay frames them: `data: …\n\n`) as Anthropic's events.
/// The relay's own error event (`data: {"error":…}`, a stream that could not be finished) becomes Anthropic's
/// `error` event; a stream that ends without a finish reason ends with one too, never with `message_stop`.
struct AnthropicEventWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    var stream: AnthropicStream
    /// Bytes of an event not yet whole.
    private var partial: [UInt8] = []

    init(inner: any ResponseBodyWriter, stream: AnthropicStream) {
        self.inner = inner
        self.stream = stream
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        partial += buffer.readableBytesView
        var out: [UInt8] = []
        var start = 0
        while let end = Self.eventEnd(in: partial, from: start) {
            out += translate(partial[start..<end])
            start = end + 2
        }
        partial.removeFirst(start)
        if !out.isEmpty { try await inner.write(ByteBuffer(bytes: out)) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        var out: [UInt8] = []
        if !stream.isClosed {
            out = stream.isComplete ? stream.finish() : stream.fail(message: "the stream ended before the answer was complete")
        }
        if !out.isEmpty { try await inner.write(ByteBuffer(bytes: out)) }
        try await inner.finish(trailingHeaders)
    }

    /// Anthropic's events for one relayed event.
    private mutating func translate(_ event: ArraySlice<UInt8>) -> [UInt8] {
        let prefix = Array("data: ".utf8)
        guard event.starts(with: prefix) else { return [] }
        let data = Array(event.dropFirst(prefix.count))
        if data.starts(with: Array(#"{"error":"#.utf8)) {
            return stream.isClosed ? [] : stream.fail(AnthropicError.from(status: 502, openAIBody: data))
        }
        return stream.feed(data)
    }

    /// Where the event starting at `start` ends (its blank line), if it is whole.
    private static func eventEnd(in bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "\n"), bytes[i + 1] == UInt8(ascii: "\n") { return i }
            i += 1
        }
        return nil
    }
}
