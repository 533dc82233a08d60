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
/// Served on the connection's loop by `ChatChannelHandler` like chat, on Hummingbird's path with a `Connection`
/// header or a body over the limit.
struct MessagesRoute: Sendable {
    let chat: ChatCompletionsRoute

    /// Hummingbird's path: requests with a `Connection` header, which the channel handler passes on.
    func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let started = Monotonic.now()
        let snapshot = chat.store.snapshot
        let table = snapshot.table
        let fields = AdmissionHeaders(request.headers).apiKeyAsBearer
        let slot: InFlightLimit.Slot
        switch chat.admitHead(fields, client: chat.clientIdentity(fields, channel: context.channel), table) {
        case .failure(let refusal): return MessagesShape.error(PlainAnswer(refusal)).response
        case .success(let admitted): slot = admitted
        }
        guard let bytes = try await Self.body(request, limit: table.server.maxBodyBytes) else {
            return MessagesShape.error(Self.tooLarge(table)).response
        }
        let translated: AnthropicRequest
        do {
            translated = try AnthropicRequest.translate(bytes)
        } catch {
            return MessagesShape.error(error).response
        }
        let admission = chat.admitBody(
            fields, body: ByteBuffer(bytes: translated.body), snapshot: snapshot, channel: context.channel, watchesClient: true,
            slot: slot, started: started)
        // A refusal comes back as a plain answer that is not 200, which the shape gives as Anthropic's error.
        return Self.translate(await chat.respond(admission), MessagesShape(translated, inputTokens: admission.estimatedPromptTokens))
    }

    /// `ChatChannelHandler`'s path: admitted or refused without suspending, as chat's `pipelineDecision`. A
    /// refusal made before the request could be translated is already in Anthropic's shape; every other answer is
    /// translated by the shape returned beside it as the handler writes it.
    func pipelineDecision(_ headers: AdmissionHeaders, body: ByteBuffer, channel: any Channel) -> (ChatCompletionsRoute.PipelineDecision, MessagesShape?) {
        let started = Monotonic.now()
        let snapshot = chat.store.snapshot
        guard headers.connection == nil else { return (.passOn, nil) }
        let fields = headers.apiKeyAsBearer
        let slot: InFlightLimit.Slot
        switch chat.admitHead(fields, client: chat.clientIdentity(fields, channel: channel), snapshot.table) {
        case .failure(let refusal): return (.admitted(.refused(MessagesShape.error(PlainAnswer(refusal)))), nil)
        case .success(let admitted): slot = admitted
        }
        let translated: AnthropicRequest
        do {
            translated = try body.withUnsafeReadableBytes { raw in
                Result { () throws(AnthropicError) in try AnthropicRequest.translate(raw) }
            }.get()
        } catch {
            return (.admitted(.refused(MessagesShape.error(error))), nil)
        }
        let admission = chat.admitBody(
            fields, body: ByteBuffer(bytes: translated.body), snapshot: snapshot, channel: channel, watchesClient: false, slot: slot,
            started: started)
        return (.admitted(admission), MessagesShape(translated, inputTokens: admission.estimatedPromptTokens))
    }

    static func tooLarge(_ table: RoutingTable) -> AnthropicError {
        AnthropicError(status: 413, type: "request_too_large", message: "the request body is over the limit of \(table.server.maxBodyBytes) bytes")
    }

    /// `POST /v1/messages/count_tokens`: the gateway's own estimate of the prompt, the one routing uses.
    func countTokens(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let table = chat.store.snapshot.table
        let fields = AdmissionHeaders(request.headers).apiKeyAsBearer
        if let refusal = chat.auth.check(fields.authorization) { return MessagesShape.error(PlainAnswer(refusal)).response }
        guard let bytes = try await Self.body(request, limit: table.server.maxBodyBytes) else {
            return MessagesShape.error(Self.tooLarge(table)).response
        }
        do {
            let counted = try AnthropicRequest.countTokens(bytes)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: counted.json)))
        } catch {
            return MessagesShape.error(error).response
        }
    }

    /// The chat path's answer in Anthropic's shape: a message, an event stream, or an error.
    static func translate(_ answer: ChatCompletionsRoute.Dispatched, _ shape: MessagesShape) -> Response {
        switch answer {
        case .plain(let plain):
            return shape.plain(plain).response
        case .stream(let response):
            let original = response.body
            return Response(
                status: .ok, headers: response.headers,
                body: ResponseBody { writer in
                    try await original.write(AnthropicEventWriter(inner: writer, shape: shape))
                })
        }
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
}

/// Writes the chat path's stream (OpenAI events as the relay frames them: `data: …\n\n`) as Anthropic's events,
/// on Hummingbird's path.
struct AnthropicEventWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    var shape: MessagesShape

    mutating func write(_ buffer: ByteBuffer) async throws {
        let out = shape.streamPart(buffer)
        if !out.isEmpty { try await inner.write(ByteBuffer(bytes: out)) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let out = shape.streamEnd()
        if !out.isEmpty { try await inner.write(ByteBuffer(bytes: out)) }
        try await inner.finish(trailingHeaders)
    }
}
