import NIOCore
import NIOHTTP1
import SwitchyardCore

/// A plain (non-streaming) chat request answered on its client connection's event loop: the first attempt
/// goes out on that loop's own pool and its answer is written back with no task and no thread hop. Anything
/// else (a failure to fail over from, a wait for a rate limit to lift) continues in a task through the
/// dispatcher's walk, exactly as the full path does, and its answer comes back to the loop.
///
/// Lives on the loop; `done` is called there once, unless `cancel` came first and the walk ended for that.
final class PlainProxy: UpstreamExchangeDelegate {
    private let route: ChatCompletionsRoute
    private let admitted: Admitted
    private let loop: any EventLoop
    private let done: (PlainAnswer) -> Void
    private var walk: Dispatcher.Walk
    private var exchange: UpstreamExchange?
    private var task: Task<Void, Never>?
    private var attempt: (model: ModelID, key: KeyID, started: UInt64)?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var overflowed = false
    private var finished = false

    init(route: ChatCompletionsRoute, admitted: Admitted, plan: RoutePlan, loop: any EventLoop, done: @escaping (PlainAnswer) -> Void) {
        self.route = route
        self.admitted = admitted
        self.loop = loop
        self.done = done
        walk = Dispatcher.Walk(plan: plan, sameModelRetries: admitted.chat.snapshot.table.retry.sameModelRetries)
    }

    private var dispatcher: Dispatcher { route.dispatcher }

    /// Sends the first attempt, or hands the walk to a task when no candidate can take it now.
    func start() {
        let chat = admitted.chat
        let snapshot = chat.snapshot
        guard let (model, key) = dispatcher.nextPairNow(&walk, chat) else { return continueInTask(after: nil) }
        walk.attempts += 1
        let budget = min(snapshot.table.retry.attemptTimeout, dispatcher.remaining(chat))
        guard budget > .zero else {
            walk.gaveUp = .deadline
            return finish(route.failed(dispatcher.failure(walk, chat), attempts: walk.attempts, admitted))
        }
        let provider = snapshot.table.providers[snapshot.table.models[model].provider]
        guard let target = snapshot.upstreamTarget(provider.id, chat.endpoint) else {
            attempt = (model, key, Monotonic.now())
            return failed(UpstreamError.badURL(provider.baseURL))
        }
        let upstreamBody = UpstreamBody.build(
            original: chat.body, summary: chat.summary, upstreamModel: snapshot.upstreamModelJSON[model], defaults: chat.route.defaults)
        let requestHead = UpstreamClient.chatHead(
            target: target, provider: provider, key: snapshot.table.keys[key], bodyLength: upstreamBody.readableBytes, stream: false,
            attempt: walk.attempts)
        let upstream = dispatcher.upstream
        attempt = (model, key, Monotonic.now())
        let exchange = UpstreamExchange(
            pool: upstream.pool(for: loop), origin: target.origin, head: requestHead, body: upstreamBody,
            headTimeout: .nanoseconds(budget.nanoseconds), readTimeout: upstream.readTimeout, delegate: self)
        self.exchange = exchange
        exchange.start()
    }

    /// The client has gone: the upstream call (or the task walking on) ends at once.
    func cancel() {
        exchange?.cancel()
        task?.cancel()
    }

    // MARK: UpstreamExchangeDelegate

    func upstreamHead(_ head: HTTPResponseHead) {
        self.head = head
    }

    func upstreamBody(_ part: ByteBuffer) -> Bool {
        var part = part
        if body.readableBytes + part.readableBytes > Dispatcher.maxAnswerBytes {
            overflowed = true
            exchange?.cancel()
        } else if body.readableBytes == 0 {
            body = part
        } else {
            body.writeBuffer(&part)
        }
        return true
    }

    func upstreamEnd() {
        exchange = nil
        guard let attempt, let head else { return }
        let result = dispatcher.conclude(
            admitted.chat, model: attempt.model, key: attempt.key, attempts: walk.attempts, status: Int(head.status.code), headers: head.headers,
            body: body, since: attempt.started)
        switch result {
        case .answered(let answer):
            finish(route.answered(answer, admitted))
        case .failed(let outcome):
            continueInTask(after: Dispatcher.FailedAttempt(model: attempt.model, key: attempt.key, outcome: outcome))
        }
    }

    func upstreamFailed(_ error: UpstreamError) {
        exchange = nil
        failed(overflowed ? UpstreamError.tooLarge(Dispatcher.maxAnswerBytes) : error)
    }

    private func failed(_ error: UpstreamError) {
        guard let attempt else { return }
        let outcome = dispatcher.conclude(admitted.chat, model: attempt.model, key: attempt.key, error: error, cancelled: error == .cancelled, since: attempt.started)
        continueInTask(after: Dispatcher.FailedAttempt(model: attempt.model, key: attempt.key, outcome: outcome))
    }

    // MARK: the rest of the walk

    private func continueInTask(after failed: Dispatcher.FailedAttempt?) {
        let (route, admitted, walk, loop) = (self.route, self.admitted, self.walk, self.loop)
        let this = NIOLoopBound(self, eventLoop: loop)
        task = Task {
            let completion = await route.dispatcher.complete(admitted.chat, walk: walk, after: failed)
            let answer = route.finished(completion, admitted)
            loop.execute { this.value.finish(answer) }
        }
    }

    private func finish(_ answer: PlainAnswer) {
        guard !finished else { return }
        finished = true
        admitted.slot.release()
        done(answer)
    }
}
