import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves one connection: the chat, models, key and control endpoints, with faults carried out byte-exactly.
final class FakeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let state: FakeUpstreamState
    private let gate: FlushGate
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var defunct = false

    init(state: FakeUpstreamState, gate: FlushGate) {
        self.state = state
        self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = nil
        case .body(var chunk):
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
        case .end:
            guard let h = head, !defunct else { return }
            head = nil
            let b = body ?? ByteBuffer()
            body = nil
            route(context: context, head: h, body: b)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        defunct = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: routing

    private func route(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let path = head.uri.firstIndex(of: "?").map { String(head.uri[..<$0]) } ?? head.uri
        switch (head.method, path) {
        case (.POST, "/v1/chat/completions"), (.POST, "/api/v1/chat/completions"), (.POST, "/openai/v1/chat/completions"):
            chat(context: context, head: head, body: body)
        case (.POST, "/v1/embeddings"), (.POST, "/api/v1/embeddings"), (.POST, "/openai/v1/embeddings"):
            embeddings(context: context, head: head, body: body)
        case (.GET, "/v1/models"), (.GET, "/api/v1/models"), (.GET, "/openai/v1/models"):
            models(context: context, head: head)
        case (.GET, "/v1/key"), (.GET, "/api/v1/key"):
            keyInfo(context: context, head: head)
        case (.POST, "/_control/behavior"):
            do {
                try state.replaceScript(with: String(buffer: body))
                send(context, head, status: .ok, body: #"{"ok":true}"#)
            } catch {
                send(context, head, status: .badRequest, body: FakeRender.error(message: "\(error)", type: "invalid_request_error", code: nil))
            }
        case (.POST, "/_control/reset"):
            state.reset()
            send(context, head, status: .ok, body: #"{"ok":true}"#)
        case (.GET, "/_control/log"):
            let data = (try? JSONEncoder().encode(state.log())) ?? Data("{}".utf8)
            send(context, head, status: .ok, body: String(decoding: data, as: UTF8.self))
        default:
            send(context, head, status: .notFound, body: FakeRender.error(message: "Unknown path \(path)", type: "invalid_request_error", code: "not_found"))
        }
    }

    private func bearer(_ head: HTTPRequestHead) -> String {
        guard let value = head.headers.first(name: "authorization") else { return "" }
        let bytes = value.utf8
        // Letters in either case, the rest exactly (as `lowercased().hasPrefix` read it, without the copy).
        let folded = bytes.prefix(7).lazy.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        guard bytes.count >= 7, folded.elementsEqual("bearer ".utf8) else { return "" }
        let isBlank = { (c: UInt8) in c == 0x20 || c == 0x09 }
        let token = bytes.dropFirst(7).drop(while: isBlank)
        guard let last = token.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(decoding: token[...last], as: UTF8.self)
    }

    private func models(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let entries = state.script.models.sorted { $0.key < $1.key }.map { id, context in
            #"{"id":"\#(FakeRender.escape(id))","object":"model","created":1700000000,"owned_by":"fake","context_length":\#(context)}"#
        }
        send(context, head, status: .ok, body: #"{"object":"list","data":["# + entries.joined(separator: ",") + "]}")
    }

    /// OpenRouter's `GET /api/v1/key`: how the gateway re-probes a key set aside as invalid.
    private func keyInfo(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let key = bearer(head)
        let decision = state.decide(key: key, model: "")
        if key.isEmpty || decision.fault == .invalidKey {
            send(context, head, status: .unauthorized, body: FakeRender.openRouterError(code: 401, message: "User not found.", metadata: #"{"error_type":"authentication"}"#))
        } else if decision.fault == .paymentRequired {
            send(context, head, status: .paymentRequired, body: FakeRender.openRouterError(code: 402, message: "Insufficient credits"))
        } else {
            send(context, head, status: .ok, body: #"{"data":{"label":"\#(FakeRender.escape(state.label(for: key)))","usage":0,"limit":null,"is_free_tier":true}}"#)
        }
    }

    // MARK: chat

    private func chat(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        serve(context: context, head: head, parsed: FakeChatRequest.parse(Data(body.readableBytesView))) { handler, context, request, decision in
            handler.answer(context: context, head: head, request: request, decision: decision)
        }
    }

    private func embeddings(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let (parsed, problem) = FakeEmbeddingRequest.parse(Data(body.readableBytesView))
        serve(context: context, head: head, parsed: (parsed?.request, problem)) { handler, context, _, decision in
            guard let parsed else { return "bad_request" }
            handler.send(context, head, status: .ok, headers: decision.headers, body: FakeEmbeddingRequest.answer(parsed))
            return "ok"
        }
    }

    /// Serves one upstream request the way every provider endpoint does: the key checked, the script's decision
    /// (faults, latency, quota) applied, then `answer` when no fault answered first; logged before any byte leaves.
    private func serve(
        context: ChannelHandlerContext, head: HTTPRequestHead, parsed: (FakeChatRequest?, String?),
        answer: @escaping (FakeHTTPHandler, ChannelHandlerContext, FakeChatRequest, FakeDecision) -> String
    ) {
        let key = bearer(head)
        let attempt = head.headers.first(name: "x-switchyard-attempt").flatMap { Int($0) }
        guard let request = parsed.0 else {
            state.record(key: key, model: "", attempt: attempt, promptTokens: 0, stream: false, action: "bad_request")
            send(context, head, status: .badRequest, body: FakeRender.error(message: parsed.1 ?? "invalid request", type: "invalid_request_error", code: nil))
            return
        }
        guard !key.isEmpty else {
            state.record(key: key, model: request.model, attempt: attempt, promptTokens: request.promptTokens, stream: request.stream, action: "no_key")
            send(context, head, status: .unauthorized, body: FakeRender.error(message: "You didn't provide an API key.", type: "invalid_request_error", code: "invalid_api_key"))
            return
        }
        let decision = state.decide(key: key, model: request.model)
        var wait = decision.behavior.latency ?? .zero
        if let max = decision.behavior.latencyMax, max > wait {
            wait = .nanoseconds(Int64.random(in: wait.nanos...max.nanos))
        }
        let respond = { [self] in
            // Logged before any byte of the answer leaves: a client that has its answer finds it in the log.
            gate.hold()
            var action = "client_gone"
            if !defunct {
                action = fail(context: context, head: head, request: request, key: key, decision: decision) ?? answer(self, context, request, decision)
            }
            state.record(key: key, model: request.model, attempt: attempt, promptTokens: request.promptTokens, stream: request.stream, action: action)
            gate.release(context: context)
        }
        if wait > .zero {
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(wait.nanos)) { respond() }
        } else {
            respond()
        }
    }

    /// A chat answer: the prompt's deterministic text, continued after a prefill, cut short by max_tokens.
    fileprivate func answer(context: ChannelHandlerContext, head: HTTPRequestHead, request: FakeChatRequest, decision: FakeDecision) -> String {
        let b = decision.behavior
        let model = request.model
        let headers = decision.headers
        let fullCount = b.answerTokens ?? 16
        let tokens = FakeAnswer.tokens(for: request.promptText, count: fullCount)
        var toSay = tokens
        var action = "ok"
        if let prefill = request.prefill {
            if let rest = FakeAnswer.continuation(of: prefill, tokens: tokens) {
                toSay = rest
                action = "prefill"
            }
        }
        var finish = "stop"
        if let max = request.maxTokens, max < toSay.count {
            toSay = Array(toSay.prefix(Swift.max(max, 0)))
            finish = "length"
        }
        let id = "gen-\(state.nextID())"
        let created = Int(Date().timeIntervalSince1970)
        if let tool = request.toolName {
            callTool(tool, context: context, head: head, request: request, id: id, created: created, decision: decision)
            return decision.fault == .cut ? "cut" : "tool_call"
        }
        if request.stream {
            stream(context: context, head: head, headers: headers, request: request, tokens: toSay, finish: finish, id: id, created: created, decision: decision)
        } else {
            nonStream(
                context: context, head: head, headers: headers, request: request, tokens: toSay, finish: finish, id: id, created: created,
                fault: decision.fault, delay: b.delay ?? .seconds(1))
        }
        return decision.fault == .none ? action : decision.fault.rawValue
    }

    /// An answer that calls the offered tool: whole, or streamed as `delta.tool_calls` pieces (cut after the
    /// call's first piece with the `cut` fault).
    private func callTool(
        _ tool: String, context: ChannelHandlerContext, head: HTTPRequestHead, request: FakeChatRequest, id: String, created: Int,
        decision: FakeDecision
    ) {
        let arguments = FakeChatRequest.toolArguments(for: request.promptText)
        guard request.stream else {
            let body = FakeRender.toolCallCompletion(
                id: id, created: created, model: request.model, tool: tool, arguments: arguments, prompt: request.promptTokens)
            send(context, head, status: .ok, headers: decision.headers, body: body)
            return
        }
        var events = [FakeRender.chunk(id: id, created: created, model: request.model, delta: #"{"role":"assistant","content":null}"#, finish: nil)]
        var deltas = FakeRender.toolCallDeltas(id: id, tool: tool, arguments: arguments)
        if decision.fault == .cut { deltas = Array(deltas.prefix(2)) }
        events += deltas.map { FakeRender.chunk(id: id, created: created, model: request.model, delta: $0, finish: nil) }
        var ending = StreamEnd.close
        if decision.fault != .cut {
            ending = .end
            events.append(FakeRender.chunk(id: id, created: created, model: request.model, delta: "{}", finish: "tool_calls"))
            events.append(FakeRender.usageChunk(id: id, created: created, model: request.model, prompt: request.promptTokens, completion: 8))
            events.append("data: [DONE]\n\n")
        }
        var h = HTTPHeaders(decision.headers)
        h.add(name: "content-type", value: "text/event-stream")
        h.add(name: "cache-control", value: "no-cache")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: h))), promise: nil)
        emit(context: context, head: head, events: events[...], delay: .zero, interval: decision.behavior.tokenInterval ?? .zero, ending: ending)
    }

    private func nonStream(
        context: ChannelHandlerContext, head: HTTPRequestHead, headers: [(String, String)], request: FakeChatRequest, tokens: [String],
        finish: String, id: String, created: Int, fault: FakeFault, delay: Duration
    ) {
        switch fault {
        case .choiceError, .streamError, .malformed:
            let body = #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":"\#(FakeRender.escape(request.model))","choices":[{"index":0,"error":{"code":502,"message":"Provider disconnected unexpectedly"},"message":{"role":"assistant","content":""},"finish_reason":"error"}]}"#
            send(context, head, status: .ok, headers: headers, body: body)
        case .cut, .stall:
            let body = FakeRender.completion(id: id, created: created, model: request.model, content: tokens.joined(), finish: finish, prompt: request.promptTokens, completion: tokens.count)
            var h = HTTPHeaders(headers)
            h.replaceOrAdd(name: "content-type", value: "application/json")
            h.replaceOrAdd(name: "content-length", value: "\(body.utf8.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: h))), promise: nil)
            let half = String(decoding: Array(body.utf8).prefix(body.utf8.count / 2), as: UTF8.self)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: half)))), promise: nil)
            if fault == .cut { context.close(promise: nil) }
        case .slowFirstToken:
            // Non-streaming: the whole answer comes after the first-token delay.
            let body = FakeRender.completion(id: id, created: created, model: request.model, content: tokens.joined(), finish: finish, prompt: request.promptTokens, completion: tokens.count)
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay.nanos)) { [self] in
                guard !defunct else { return }
                send(context, head, status: .ok, headers: headers, body: body)
            }
        default:
            let body = FakeRender.completion(id: id, created: created, model: request.model, content: tokens.joined(), finish: finish, prompt: request.promptTokens, completion: tokens.count)
            send(context, head, status: .ok, headers: headers, body: body)
        }
    }

    /// What a stream does after its events: end properly, drop the connection, or go silent.
    private enum StreamEnd { case end, close, stall }

    private func stream(
        context: ChannelHandlerContext, head: HTTPRequestHead, headers: [(String, String)], request: FakeChatRequest, tokens: [String],
        finish: String, id: String, created: Int, decision: FakeDecision
    ) {
        let b = decision.behavior
        let fault = decision.fault
        let at = b.afterTokens ?? tokens.count / 2
        var events: [String] = []
        var ending = StreamEnd.end
        if b.keepAlive == true { events.append(": OPENROUTER PROCESSING\n\n") }
        events.append(FakeRender.chunk(id: id, created: created, model: request.model, delta: FakeRender.roleDelta, finish: nil))
        var emitted = 0
        var finished = true
        for (i, token) in tokens.enumerated() {
            if i == at {
                if fault == .malformed { events.append("data: {\"id\":\"\(id)\",\"choices\":[{\"delta\":{\"content\":\n\n") }
                if fault == .streamError {
                    events.append(FakeRender.streamError(id: id, created: created, model: request.model))
                    finished = false
                    break
                }
                if fault == .cut || fault == .stall {
                    ending = fault == .cut ? .close : .stall
                    finished = false
                    break
                }
            }
            events.append(FakeRender.chunk(id: id, created: created, model: request.model, delta: FakeRender.contentDelta(token), finish: nil))
            emitted += 1
        }
        if finished {
            events.append(FakeRender.chunk(id: id, created: created, model: request.model, delta: "{}", finish: finish))
            events.append(FakeRender.usageChunk(id: id, created: created, model: request.model, prompt: request.promptTokens, completion: emitted))
            if fault != .noDone { events.append("data: [DONE]\n\n") }
        }

        var h = HTTPHeaders(headers)
        h.add(name: "content-type", value: "text/event-stream")
        h.add(name: "cache-control", value: "no-cache")
        if !head.isKeepAlive { h.add(name: "connection", value: "close") }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: h))), promise: nil)

        let interval = b.tokenInterval ?? .zero
        let firstDelay = fault == .slowFirstToken ? (b.delay ?? .seconds(1)) : .zero
        if interval == .zero && firstDelay == .zero {
            var buffer = context.channel.allocator.buffer(capacity: events.reduce(0) { $0 + $1.utf8.count })
            for e in events { buffer.writeString(e) }
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            finishStream(context: context, head: head, ending: ending)
        } else {
            emit(context: context, head: head, events: events[...], delay: firstDelay, interval: interval, ending: ending)
        }
    }

    private func emit(context: ChannelHandlerContext, head: HTTPRequestHead, events: ArraySlice<String>, delay: Duration, interval: Duration, ending: StreamEnd) {
        let step = { [self] in
            guard !defunct else { return }
            guard let first = events.first else {
                finishStream(context: context, head: head, ending: ending)
                return
            }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: first)))), promise: nil)
            emit(context: context, head: head, events: events.dropFirst(), delay: interval, interval: interval, ending: ending)
        }
        if delay == .zero {
            step()
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay.nanos)) { step() }
        }
    }

    private func finishStream(context: ChannelHandlerContext, head: HTTPRequestHead, ending: StreamEnd) {
        switch ending {
        case .end:
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        case .close:
            context.flush()
            context.close(promise: nil)
        case .stall:
            context.flush()
        }
    }

    // MARK: plain responses

    func send(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, status: HTTPResponseStatus, headers: [(String, String)] = [], body: String) {
        var h = HTTPHeaders()
        h.reserveCapacity(headers.count + 3)
        for (name, value) in headers { h.add(name: name, value: value) }
        // The decision's headers never carry these, so they are added without a search.
        h.add(name: "content-type", value: "application/json")
        h.add(name: "content-length", value: String(body.utf8.count))
        if !head.isKeepAlive { h.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: h))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

extension Duration {
    var nanos: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
