import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Serves `POST /v1/chat/completions`, `POST /v1/embeddings` and `POST /v1/messages` (its answers turned into
/// Anthropic's shapes by `MessagesShape` as they are written) inside the connection's channel pipeline, on the
/// event loop that read the request, straight from NIOHTTP1's parts: cache hits at once, other plain
/// (non-streaming) requests on this loop through `PlainProxy`, streams on this loop through `StreamProxy`; either
/// in a task when a shared store must be asked first (a stream's task writes it here through
/// `ChannelStreamWriter`). Requests with a `Connection` header and every other path pass on to Hummingbird (its
/// HTTPTypes codec and router), which sits behind this handler.
///
/// The handler also owns the connection's timing for every request, its own and those passed on
/// (`ConnectionLifecycle`: read timeout, idle timeout, closing after the last answer once the server shuts
/// down), so Hummingbird's connection-state handler is taken out of the pipeline. Answers keep their order:
/// while an answer is being made, further requests of a pipelining client wait, and once a request has passed
/// on, later ones follow it. A closed connection cancels the answer being made, and with it the upstream call.
final class ChatChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// Holding a request to one of the served endpoints until its end arrives.
        case holding(HTTPRequestHead, ByteBuffer, Endpoint)
        /// Passing the current request on as it arrives.
        case passing
        /// The answer is being made: on this loop, or by a task.
        case answering(Answering)
    }

    /// What makes the current answer, cancelled when the client's connection closes.
    private enum Answering {
        case onLoop(PlainProxy)
        case streamOnLoop(StreamProxy)
        case task(Task<Void, Never>)

        func cancel() {
            switch self {
            case .onLoop(let proxy): proxy.cancel()
            case .streamOnLoop(let proxy): proxy.cancel()
            case .task(let task): task.cancel()
            }
        }
    }

    /// The endpoints served here.
    enum Endpoint {
        case chatCompletions
        case embeddings
        /// Anthropic's Messages: chat, answered in Anthropic's shapes.
        case messages

        var upstream: UpstreamEndpoint { self == .embeddings ? .embeddings : .chatCompletions }
    }

    private let route: ChatCompletionsRoute
    private let messages: MessagesRoute
    /// Turns the answer being made into Anthropic's shapes, for a `/v1/messages` request.
    private var shape: MessagesShape?
    private let serverName: String
    private let logger: Logger
    /// The table's body limit when the held request began.
    private var maxBody = 0
    private var state = State.idle
    /// Requests passed on whose answers have not ended: while any are, requests pass on too.
    private var passedOn = 0
    /// Whether parts went on to Hummingbird's handlers since the last read burst ended.
    private var passedInBurst = false
    /// Parts that arrived while an answer was being made (a pipelining client), replayed after it.
    private var queued: [HTTPServerRequestPart] = []
    /// A read asked for while an answer was being made, issued once it is out.
    private var readHeld = false
    /// Set once the connection is gone: an answer that still comes is not written.
    private var removed = false
    private var lifecycle: ConnectionLifecycle
    /// Due at `lifecycle.deadline` or earlier; nil while nothing needs timing.
    private var timer: Scheduled<Void>?
    /// The loop's, taken on the loop at the first answer.
    private lazy var turnFlush = TurnFlush.onThisThread

    init(route: ChatCompletionsRoute, serverName: String, readTimeout: Duration, idleTimeout: Duration, logger: Logger) {
        self.route = route
        messages = MessagesRoute(chat: route)
        self.serverName = serverName
        self.logger = logger
        lifecycle = ConnectionLifecycle(readTimeout: readTimeout, idleTimeout: idleTimeout, now: Monotonic.now())
    }

    private var isAnswering: Bool {
        if case .answering = state { return true }
        return false
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // The decoder emits nothing until a head is complete, so the first raw byte of a request is watched for
        // in front of it.
        try? context.pipeline.syncOperations.addHandler(RequestStartWatcher(owner: self), position: .first)
        arm(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head:
            lifecycle.requestBegan(now: Monotonic.now())
            arm(context)
        case .body: break
        case .end: lifecycle.requestRead()
        }
        if isAnswering {
            queued.append(part)
        } else {
            take(part, context: context)
        }
    }

    private func take(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            if passedOn == 0, head.method == .POST, head.version == .http1_1, let endpoint = Self.endpoint(head.uri) {
                maxBody = route.store.snapshot.table.server.maxBodyBytes
                state = .holding(head, context.channel.allocator.buffer(capacity: 0), endpoint)
            } else {
                passOn(context, part)
            }
        case (.holding(let head, var body, let endpoint), .body(var chunk)):
            state = .idle  // drop the reference so the buffer is not copied on write
            if body.readableBytes + chunk.readableBytes > maxBody {
                // The full path refuses it with its own answer.
                passOn(context, .head(head))
                if body.readableBytes > 0 { pass(context, .body(body)) }
                pass(context, .body(chunk))
            } else {
                if body.readableBytes == 0 { body = chunk } else { body.writeBuffer(&chunk) }
                state = .holding(head, body, endpoint)
            }
        case (.holding(let head, let body, let endpoint), .end(let trailers)):
            state = .idle
            let decision: ChatCompletionsRoute.PipelineDecision
            if endpoint == .messages {
                (decision, shape) = messages.pipelineDecision(AdmissionHeaders(head.headers), body: body, channel: context.channel)
            } else {
                shape = nil
                decision = route.pipelineDecision(AdmissionHeaders(head.headers), body: body, channel: context.channel, endpoint: endpoint.upstream)
            }
            switch decision {
            case .admitted(let admission):
                answer(admission, context: context)
            case .passOn:
                passOn(context, .head(head))
                if body.readableBytes > 0 { pass(context, .body(body)) }
                pass(context, .end(trailers))
                // The whole request has passed on: the next one is read afresh (left `.passing`, the request after
                // it would go through Hummingbird's slower path too).
                state = .idle
            }
        case (.passing, .end):
            state = .idle
            pass(context, part)
        default:
            pass(context, part)
        }
    }

    /// The proxied endpoint at `uri`, if it is one this handler serves.
    static func endpoint(_ uri: String) -> Endpoint? {
        switch uri {
        case "/v1/chat/completions": .chatCompletions
        case "/v1/embeddings": .embeddings
        case "/v1/messages": .messages
        default: nil
        }
    }

    /// Starts passing the current request on.
    private func passOn(_ context: ChannelHandlerContext, _ head: HTTPServerRequestPart) {
        passedOn += 1
        state = .passing
        pass(context, head)
    }

    /// Hands `part` on to Hummingbird's handlers behind this one.
    private func pass(_ context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        passedInBurst = true
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Hummingbird's handlers hear that a read burst ended only when parts went on to them in it: for a burst
    /// that held a proxied request, that would be a walk through them for nothing.
    func channelReadComplete(context: ChannelHandlerContext) {
        guard passedInBurst else { return }
        passedInBurst = false
        context.fireChannelReadComplete()
    }

    /// Answers an admitted request: at once when refused or a hit, on this loop when its first attempt can go
    /// out here (`PlainProxy`, `StreamProxy`), else in a task: a plain answer the handler takes back on its loop
    /// to write, a stream the task writes through `ChannelStreamWriter`.
    private func answer(_ admission: Admission, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let bound = NIOLoopBound(context, eventLoop: loop)
        switch admission {
        case .refused(let answer):
            write(context, answer)
        case .hit(let answer, let chat, let started):
            write(context, answer)
            route.logHit(chat, started: started)
        case .dispatch(let admitted) where route.answersOnLoop && admitted.chat.summary.stream:
            let proxy = StreamProxy(route: route, admitted: admitted, plan: route.plan(admitted), handler: self, context: context)
            state = .answering(.streamOnLoop(proxy))
            proxy.start()
        case .dispatch(let admitted) where route.answersOnLoop:
            let proxy = PlainProxy(route: route, admitted: admitted, plan: route.plan(admitted), loop: loop) { answer in
                handler.value.answered(bound.value, answer)
            }
            state = .answering(.onLoop(proxy))
            proxy.start()
        case .dispatch, .follow:
            let route = self.route
            state = .answering(
                .task(
                    Task {
                        switch await route.respond(admission) {
                        case .plain(let answer): loop.execute { handler.value.answered(bound.value, answer) }
                        case .stream(let response): await ChannelStreamWriter.send(response, handler: handler, context: bound)
                        }
                    }))
        }
    }

    func answered(_ context: ChannelHandlerContext, _ answer: PlainAnswer) {
        guard !removed else { return }
        state = .idle
        write(context, answer)
        takeQueued(context)
    }

    /// Goes on with the requests that waited for the answer just written.
    private func takeQueued(_ context: ChannelHandlerContext) {
        // Requests a pipelining client sent meanwhile, in order; one of them may start another answer.
        let waiting = queued
        queued = []
        for part in waiting {
            if isAnswering { queued.append(part) } else { take(part, context: context) }
        }
        // Hummingbird's async channel hands reads on at the end of a read burst; replayed parts are one.
        channelReadComplete(context: context)
        if readHeld, !isAnswering || queued.count < Self.maxQueuedParts {
            readHeld = false
            context.read()
        }
    }

    /// Writes a whole answer in one flush at the end of the loop's turn (`TurnFlush`), with the headers every answer
    /// carries.
    private func write(_ context: ChannelHandlerContext, _ answer: PlainAnswer) {
        let answer = shape?.plain(answer) ?? answer
        let head = responseHead(status: answer.status, fields: answer.fields, contentLength: answer.body.readableBytes)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if answer.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        turnFlush.flush(context)
        answerEnded(context)
    }

    /// `fields` with the headers every answer carries; without a length the encoder sends the body chunked. Made
    /// from a list in one go: `HTTPHeaders.add` checks each name again, which `HTTPFields` already did.
    private func responseHead(status: HTTPResponse.Status, fields: HTTPFields, contentLength: Int?) -> HTTPResponseHead {
        var list: [(String, String)] = []
        list.reserveCapacity(fields.count + 3)
        for field in fields { list.append((field.name.canonicalName, field.value)) }
        if let contentLength { list.append(("content-length", String(contentLength))) }
        list.append(("date", SecondCache.httpDate.now()))
        list.append(("server", serverName))
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status.code), headers: HTTPHeaders(list))
    }

    // MARK: streams, written by `StreamProxy` on this loop or by their task through `ChannelStreamWriter`

    /// Unflushed, the head leaves with the body part written next; `written`, when given, completes once it is written.
    func writeStreamHead(
        _ context: ChannelHandlerContext, status: HTTPResponse.Status, fields: HTTPFields, flush: Bool = true, written: EventLoopPromise<Void>?
    ) {
        guard !removed else {
            written?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let head = wrapOutboundOut(.head(responseHead(status: status, fields: fields, contentLength: nil)))
        if flush { context.writeAndFlush(head, promise: written) } else { context.write(head, promise: written) }
    }

    /// Writes and flushes a part of a stream; `written`, when given, completes once it is written. The relay on the
    /// loop passes none: a promise through NIOHTTP1's chunked encoding costs five futures a part.
    func writeStreamPart(_ context: ChannelHandlerContext, _ part: ByteBuffer, written: EventLoopPromise<Void>?) {
        guard !removed else {
            written?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var part = part
        if shape != nil {
            part = ByteBuffer(bytes: shape!.streamPart(part))
            // Nothing to send yet (an event not whole): a head written unflushed goes now.
            guard part.readableBytes > 0 else {
                context.flush()
                written?.succeed()
                return
            }
        }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(part))), promise: written)
    }

    /// Ends a stream's answer; `written`, when given, completes once its end is written.
    func endStream(_ context: ChannelHandlerContext, written: EventLoopPromise<Void>?) {
        guard !removed else {
            written?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        state = .idle
        if let tail = shape?.streamEnd(), !tail.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: tail)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        answerEnded(context)
        takeQueued(context)
    }

    /// A stream's proxy relays as fast as the client takes it.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .answering(.streamOnLoop(let proxy)) = state { proxy.writabilityChanged(context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    /// A stream that stopped without its end cannot be finished: the connection closes.
    func abandonStream(_ context: ChannelHandlerContext) {
        guard !removed else { return }
        context.close(promise: nil)
    }

    /// Reads go on while an answer is being made (holding them costs two `epoll_ctl` per request); only a
    /// pipelining client that queued this many parts waits until the answer is out.
    static let maxQueuedParts = 64

    func read(context: ChannelHandlerContext) {
        if isAnswering, queued.count >= Self.maxQueuedParts {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Answers Hummingbird makes for requests passed on.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else { return context.write(data, promise: promise) }
        if passedOn > 0 { passedOn -= 1 }
        context.write(data, promise: promise)
        answerEnded(context)
    }

    // MARK: the connection's timing

    /// Raw bytes arrived (from `RequestStartWatcher`): on a waiting connection a request has begun.
    fileprivate func bytesArrived() {
        lifecycle.bytesArrived(now: Monotonic.now())
    }

    private func answerEnded(_ context: ChannelHandlerContext) {
        switch lifecycle.answerEnded(now: Monotonic.now()) {
        case .close:
            context.flush()
            context.close(promise: nil)
        case .none:
            arm(context)
        }
    }

    /// Sets the connection's one timer when none is set and something needs timing.
    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil, !removed, let deadline = lifecycle.deadline else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(deadline)) { [self] in
            timer = nil
            switch lifecycle.timerFired(now: Monotonic.now()) {
            case .close: context.close(promise: nil)
            case .none: arm(context)
            }
        }
    }

    /// Once the server is shutting down, the connection closes after the answers in flight (Hummingbird's
    /// connection-state handler, which did this, is gone from the pipeline). A client whose input ends while
    /// Hummingbird serves one of its requests has gone, as nginx takes it: the connection is closed, so that
    /// request's upstream call, which watches it, ends too. (Hummingbird allows half-closure and would keep the
    /// connection, and the upstream call, open until the answer.) Requests this handler answers itself end the
    /// same way: Hummingbird, with none of its own in flight, closes the connection.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            if lifecycle.quiesce() == .close {
                // An answer written this turn may not have been flushed yet.
                context.flush()
                context.close(promise: nil)
            }
            return
        }
        if case ChannelEvent.inputClosed = event, passedOn > 0 {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A closed connection takes its answer's task, and so its upstream call, with it.
    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        timer?.cancel()
        timer = nil
        if case .answering(let answering) = state { answering.cancel() }
        state = .idle
        queued = []
    }
}

/// Sits first in the pipeline and tells `ChatChannelHandler` when raw bytes arrive, before a head is whole.
private final class RequestStartWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let owner: ChatChannelHandler

    init(owner: ChatChannelHandler) {
        self.owner = owner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner.bytesArrived()
        context.fireChannelRead(data)
    }
}
