import HTTPTypes
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// A stream answered on its client connection's event loop: the first attempt goes out on that loop's own pool,
/// its events are read as they arrive, the head leaves with the first output and the rest is relayed with no task
/// and no thread hop, a slow client holding the upstream's reads. What needs the walk (a failure before output,
/// or a cut, stall or error event after it) goes on in a task exactly as the full path does (`startStream`,
/// `relay`), writing to the connection through `ChannelStreamWriter`.
///
/// The rules are the full path's (`readUntilOutput`, `pump`, `UpstreamEvents`' watchdog), carried out on the
/// loop: the first output within `first_token_timeout` of the head, no silence longer than
/// `stream_idle_timeout` after it, nothing past the request's deadline. Lives on the loop.
final class StreamProxy: UpstreamExchangeDelegate {
    private enum Phase {
        /// The attempt is out; no head yet.
        case awaitingHead
        /// A refusal's body being read to classify it.
        case refused(status: Int, headers: HTTPHeaders, body: ByteBuffer)
        /// A 200: events are kept until the first output.
        case beforeOutput
        case relaying(StreamSession)
        /// A task carries on, or the stream has ended.
        case done
    }

    private let route: ChatCompletionsRoute
    private let admitted: Admitted
    private let handler: ChatChannelHandler
    private let context: ChannelHandlerContext
    private var walk: Dispatcher.Walk
    private var phase = Phase.awaitingHead
    private var exchange: UpstreamExchange?
    private var task: Task<Void, Never>?
    private var attempt: (model: ModelID, key: KeyID, started: UInt64)?
    private var decoder = SSEDecoder()
    /// Events read before the first output (role-only chunks), sent ahead of it.
    private var pending: [[UInt8]] = []
    /// Frames of the current read, written together at its end.
    private var unwritten: ByteBuffer
    /// When the head came (the first token is timed from it), then when the last event came.
    private var lastEvent: UInt64 = 0
    private var timer: Scheduled<Void>?
    private var timerDue: UInt64 = .max
    /// Why the proxy ended the upstream call itself.
    private var fault: StreamFault?
    /// Reads held while the client's connection is not writable.
    private var readsHeld = false

    init(route: ChatCompletionsRoute, admitted: Admitted, plan: RoutePlan, handler: ChatChannelHandler, context: ChannelHandlerContext) {
        self.route = route
        self.admitted = admitted
        self.handler = handler
        self.context = context
        unwritten = context.channel.allocator.buffer(capacity: 0)
        walk = Dispatcher.Walk(plan: plan, sameModelRetries: admitted.chat.snapshot.table.retry.sameModelRetries)
    }

    private var dispatcher: Dispatcher { route.dispatcher }
    private var chat: ChatRequest { admitted.chat }
    private var retry: RetrySettings { chat.snapshot.table.retry }

    /// Sends the first attempt, or hands the walk to a task when no candidate can take it now.
    func start() {
        let snapshot = chat.snapshot
        guard let (model, key) = dispatcher.nextPairNow(&walk, chat) else { return handOff(after: nil) }
        walk.attempts += 1
        let budget = min(retry.firstTokenTimeout, dispatcher.remaining(chat))
        guard budget > .zero else {
            return handOff(after: Dispatcher.FailedAttempt(model: model, key: key, outcome: Outcome(.transient, message: "no time left before the deadline")))
        }
        let provider = snapshot.table.providers[snapshot.table.models[model].provider]
        attempt = (model, key, Monotonic.now())
        guard let target = snapshot.upstreamTarget(provider.id) else { return refused(Dispatcher.networkOutcome(UpstreamError.badURL(provider.baseURL), cancelled: false)) }
        let body = UpstreamBody.build(
            original: chat.body, summary: chat.summary, upstreamModel: snapshot.upstreamModelJSON[model], defaults: chat.route.defaults)
        let head = UpstreamClient.chatHead(
            target: target, provider: provider, key: snapshot.table.keys[key], bodyLength: body.readableBytes, stream: true, attempt: walk.attempts)
        let upstream = dispatcher.upstream
        let exchange = UpstreamExchange(
            pool: upstream.pool(for: context.eventLoop), origin: target.origin, head: head, body: body,
            headTimeout: .nanoseconds(budget.nanoseconds), readTimeout: upstream.readTimeout, delegate: self)
        self.exchange = exchange
        exchange.start()
    }

    /// The client has gone: the upstream call, or the task carrying on, ends at once.
    func cancel() {
        task?.cancel()
        if let exchange, !exchange.isDone { exchange.cancel() }
    }

    /// The client's connection can take more (or no more) at once.
    func writabilityChanged(_ writable: Bool) {
        guard writable, readsHeld else { return }
        readsHeld = false
        lastEvent = Monotonic.now()
        exchange?.resumeReading()
    }

    // MARK: UpstreamExchangeDelegate

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let attempt else { return }
        let status = Int(head.status.code)
        dispatcher.learnQuota(head.headers, status: status, key: attempt.key, chat.snapshot)
        guard status == 200 else {
            phase = .refused(status: status, headers: head.headers, body: context.channel.allocator.buffer(capacity: 0))
            return
        }
        dispatcher.countAttempt(chat, model: attempt.model, key: attempt.key, outcome: .success, since: attempt.started)
        phase = .beforeOutput
        lastEvent = Monotonic.now()
        arm()
    }

    func upstreamBody(_ part: ByteBuffer) -> Bool {
        switch phase {
        case .refused(let status, let headers, var body):
            phase = .done  // drop the reference so the buffer is not copied on write
            var part = part
            if body.readableBytes < Dispatcher.maxRefusalBytes { body.writeBuffer(&part) }
            phase = .refused(status: status, headers: headers, body: body)
        case .beforeOutput, .relaying:
            lastEvent = Monotonic.now()
            part.withUnsafeReadableBytes { bytes in decoder.feed(bytes) { take($0) } }
            flush()
        case .awaitingHead, .done:
            break
        }
        return !readsHeld
    }

    func upstreamEnd() {
        exchange = nil
        switch phase {
        case .refused(let status, let headers, let body):
            refused(status: status, headers: headers, body: body)
        case .beforeOutput:
            failedBeforeOutput(Outcome(.transient, message: "the stream ended before any output"))
        case .relaying(let session):
            if session.finishSeen { return complete(session, writingDone: true) }
            interrupt(session, Outcome(.transient, message: "the stream ended before the answer finished"))
        case .awaitingHead, .done:
            break
        }
    }

    func upstreamFailed(_ error: UpstreamError) {
        exchange = nil
        switch phase {
        case .awaitingHead:
            refused(Dispatcher.openFailure(error, cancelled: false))
        case .refused(let status, let headers, _):
            refused(status: status, headers: headers, body: ByteBuffer())
        case .beforeOutput:
            if let fault { return failedBeforeOutput(fault.outcomeBeforeOutput(retry)) }
            // Without a fault of the proxy's own timer, only the client's leaving cancels the exchange.
            failedBeforeOutput(error == .cancelled ? StreamFault.clientGone.outcomeBeforeOutput(retry) : Dispatcher.networkOutcome(error, cancelled: false))
        case .relaying(let session):
            if let fault, let outcome = fault.outcomeAfterOutput(retry) { return interrupt(session, outcome) }
            if error == .cancelled { return clientLeft(session) }
            // Cut after the finish chunk: the answer is whole; only the terminator is missing.
            if session.finishSeen { return complete(session, writingDone: true) }
            interrupt(session, Dispatcher.networkOutcome(error, cancelled: false))
        case .done:
            break
        }
    }

    // MARK: events

    private func take(_ event: [UInt8]) {
        switch phase {
        case .beforeOutput: takeBeforeOutput(event)
        case .relaying(let session): relay(event, session)
        default: break
        }
    }

    /// `readUntilOutput`'s rules: role-only chunks wait, malformed events are dropped, an error event fails the
    /// attempt, the first content, tool call, finish, usage or [DONE] begins the output.
    private func takeBeforeOutput(_ event: [UInt8]) {
        guard let attempt else { return }
        if StreamChunkScan.isDone(event) {
            let session = beginOutput(delivered: "", finishSeen: true)
            return complete(session, writingDone: true)
        }
        guard let chunk = StreamChunkScan.scan(event) else { return }
        if chunk.isError {
            return failedBeforeOutput(classifier(attempt.model).classifyStreamError(event: event, secrets: chat.snapshot.secrets))
        }
        pending.append(event)
        if chunk.isOutput {
            _ = beginOutput(delivered: chunk.content, finishSeen: chunk.finishReason != nil)
        }
    }

    /// `pump`'s rules: frames of one read leave together; [DONE] completes, an error event interrupts.
    private func relay(_ event: [UInt8], _ session: StreamSession) {
        if StreamChunkScan.isDone(event) { return complete(session, writingDone: true) }
        guard let chunk = StreamChunkScan.scan(event) else { return }
        if chunk.isError {
            return interrupt(session, classifier(session.model).classifyStreamError(event: event, secrets: chat.snapshot.secrets))
        }
        session.relayed(chunk)
        Dispatcher.writeFrame(event, into: &unwritten)
    }

    /// The first output is in hand: the head goes out, then the events kept for it.
    private func beginOutput(delivered: String, finishSeen: Bool) -> StreamSession {
        let (model, key) = (attempt!.model, attempt!.key)
        let session = StreamSession(
            request: chat, walk: walk, events: nil, model: model, key: key, pending: [], delivered: delivered, finishSeen: finishSeen)
        phase = .relaying(session)
        // The head leaves with the first frames, flushed at the end of this read.
        handler.writeStreamHead(context, status: .ok, fields: route.streamHeaders(session, admitted), flush: false, written: nil)
        session.frames(of: pending, into: &unwritten)
        pending = []
        lastEvent = Monotonic.now()
        // From now on silence is timed against the idle timeout, which may fall before the first token's.
        arm()
        return session
    }

    /// Writes what the last read made, and holds reads while the client cannot take more.
    private func flush() {
        guard unwritten.readableBytes > 0 else { return }
        handler.writeStreamPart(context, unwritten, written: nil)
        unwritten = context.channel.allocator.buffer(capacity: 0)
        if !context.channel.isWritable { readsHeld = true }
    }

    private func classifier(_ model: ModelID) -> OutcomeClassifier {
        chat.snapshot.classifiers[chat.snapshot.table.models[model].provider]
    }

    // MARK: endings

    /// The stream reached its end. The upstream call is left to end on its own, so its connection can be reused.
    private func complete(_ session: StreamSession, writingDone: Bool) {
        if writingDone { unwritten.writeImmutableBuffer(Dispatcher.done) }
        flush()
        end(cancellingUpstream: false)
        dispatcher.streamCompleted(session)
        handler.endStream(context, written: nil)
        route.streamEnded(session, .completed, admitted)
    }

    private func clientLeft(_ session: StreamSession) {
        end()
        let snapshot = chat.snapshot
        guard let attempt else { return }
        dispatcher.log(snapshot.health.record(model: attempt.model, key: attempt.key, outcome: Outcome(.cancelled), at: dispatcher.clock.now()), snapshot)
        route.streamEnded(session, .clientGone, admitted)
    }

    /// A non-200 answer, classified as `openStream` does.
    private func refused(status: Int, headers: HTTPHeaders, body: ByteBuffer) {
        guard let attempt else { return }
        refused(dispatcher.refusedStream(chat, model: attempt.model, status: status, headers: headers, body: body))
    }

    /// The attempt failed before a 200 head: counted as `openStream` counts it, then the walk goes on.
    private func refused(_ outcome: Outcome) {
        guard let attempt else { return }
        let outcome = context.channel.isActive ? outcome : Outcome(.cancelled)
        dispatcher.countAttempt(chat, model: attempt.model, key: attempt.key, outcome: outcome.kind, since: attempt.started)
        handOff(after: Dispatcher.FailedAttempt(model: attempt.model, key: attempt.key, outcome: outcome))
    }

    private func failedBeforeOutput(_ outcome: Outcome) {
        guard let attempt else { return }
        handOff(after: Dispatcher.FailedAttempt(model: attempt.model, key: attempt.key, outcome: outcome))
    }

    /// Before any output: the walk goes on in a task from the failed attempt, as `startStream` would.
    private func handOff(after failed: Dispatcher.FailedAttempt?) {
        end()
        let (route, admitted, walk) = (self.route, self.admitted, self.walk)
        let (handler, context) = (NIOLoopBound(self.handler, eventLoop: self.context.eventLoop), NIOLoopBound(self.context, eventLoop: self.context.eventLoop))
        task = Task {
            let start = await route.dispatcher.startStream(admitted.chat, walk: walk, after: failed)
            switch route.streamed(admitted, start) {
            case .plain(let answer): context.eventLoop.execute { handler.value.answered(context.value, answer) }
            case .stream(let response): await ChannelStreamWriter.send(response, handler: handler, context: context)
            }
        }
    }

    /// After output began: the relay goes on in a task with the stream's continuation, as `relay` would.
    private func interrupt(_ session: StreamSession, _ outcome: Outcome) {
        end()
        flush()
        let body = route.streamBody(session, admitted, after: outcome)
        let (handler, context) = (NIOLoopBound(self.handler, eventLoop: self.context.eventLoop), NIOLoopBound(self.context, eventLoop: self.context.eventLoop))
        task = Task { await ChannelStreamWriter.send(head: nil, body: body, handler: handler, context: context) }
    }

    /// Stops the proxy's own part: its timer, and the upstream call if it is still running. An upstream call left
    /// to end on its own reads on to its end.
    private func end(cancellingUpstream: Bool = true) {
        phase = .done
        timer?.cancel()
        timer = nil
        if let exchange, !exchange.isDone {
            if cancellingUpstream { exchange.cancel() } else if readsHeld { exchange.resumeReading() }
        }
        readsHeld = false
        exchange = nil
    }

    // MARK: timing

    /// Sets the one timer for the earliest bound; a timer already due earlier is left to re-arm when it fires.
    private func arm() {
        let due = nextDue()
        guard timer == nil || due < timerDue else { return }
        timer?.cancel()
        timerDue = due
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(due)) { [self] in
            timer = nil
            timerDue = .max
            timerFired()
        }
    }

    private func nextDue() -> UInt64 {
        let limit: Duration
        switch phase {
        case .beforeOutput: limit = retry.firstTokenTimeout
        case .relaying: limit = retry.streamIdleTimeout
        default: return chat.deadlineMono
        }
        return min(chat.deadlineMono, lastEvent &+ UInt64(max(limit.nanoseconds, 0)))
    }

    private func timerFired() {
        let now = Monotonic.now()
        let ended: StreamFault?
        switch phase {
        case .beforeOutput, .relaying:
            if now >= chat.deadlineMono {
                ended = .deadline
            } else if readsHeld {
                // Waiting for the client is not the upstream's silence.
                lastEvent = now
                ended = nil
            } else if now >= nextDue() {
                if case .beforeOutput = phase { ended = .silent } else { ended = .stalled }
            } else {
                ended = nil
            }
        default: return
        }
        guard let ended else { return arm() }
        fault = ended
        exchange?.cancel()
    }
}
