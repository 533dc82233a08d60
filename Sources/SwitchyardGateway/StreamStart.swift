import NIOCore
import NIOHTTP1
import SwitchyardCore

/// A stream's start in the walk: candidates are tried until one produces output, every failure before that
/// invisible to the client (design.md §Streaming).
extension Dispatcher {
    enum StreamStart: Sendable {
        case started(StreamSession)
        case failed(GatewayError, attempts: Int)
    }

    /// What reading one attempt up to its first output found.
    enum FirstOutput {
        case output(pending: [[UInt8]], delivered: String, finishSeen: Bool, done: Bool)
        case failed(Outcome)
    }

    /// Tries candidates until one produces output; every failure before that is invisible to the client.
    func startStream(_ request: ChatRequest, plan: RoutePlan) async -> StreamStart {
        await startStream(request, walk: Walk(plan: plan, sameModelRetries: request.snapshot.table.retry.sameModelRetries))
    }

    /// Walks on from `walk` until a candidate produces output; `after` is an attempt already made (by the channel
    /// handler on its event loop) whose failure moves the walk first.
    func startStream(_ request: ChatRequest, walk start: Walk, after failed: FailedAttempt? = nil) async -> StreamStart {
        let ended = await walkOn(request, from: start, after: failed) { walk, model, key -> Step<StreamSession> in
            switch await openStream(request, model: model, key: key, attempt: walk.attempts, prefill: nil) {
            case .refused(let refusal):
                return .failed(refusal)
            case .opened(let events):
                switch await readUntilOutput(events, request, model: model, skipRole: false) {
                case .output(let pending, let delivered, let finishSeen, let done):
                    let session = StreamSession(
                        request: request, walk: walk, events: events, model: model, key: key, pending: pending, delivered: delivered,
                        finishSeen: finishSeen)
                    if done { session.finishSeen = true }
                    return .done(session)
                case .failed(let failure):
                    events.cancel()
                    return .failed(failure)
                }
            }
        }
        if let session = ended.result { return .started(session) }
        return .failed(failure(ended.walk, request), attempts: ended.walk.attempts)
    }

    enum OpenResult {
        case opened(UpstreamEvents)
        case refused(Outcome)
    }

    /// Sends a streaming attempt and checks its head; a non-200 is read and classified.
    func openStream(_ request: ChatRequest, model: ModelID, key: KeyID, attempt: Int, prefill: String?) async -> OpenResult {
        let snapshot = request.snapshot
        let table = snapshot.table
        let budget = min(table.retry.firstTokenTimeout, remaining(request))
        guard budget > .zero else { return .refused(Outcome(.transient, message: "no time left before the deadline")) }
        let provider = table.providers[table.models[model].provider]
        let started = Monotonic.now()
        let result = await openStreamAttempt(request, model: model, key: key, attempt: attempt, prefill: prefill, provider: provider, budget: budget)
        switch result {
        case .opened: countAttempt(request, model: model, key: key, outcome: .success, since: started)
        case .refused(let outcome): countAttempt(request, model: model, key: key, outcome: outcome.kind, since: started)
        }
        return result
    }

    private func openStreamAttempt(
        _ request: ChatRequest, model: ModelID, key: KeyID, attempt: Int, prefill: String?, provider: Provider, budget: Duration
    ) async -> OpenResult {
        let snapshot = request.snapshot
        let table = snapshot.table
        do {
            let body = UpstreamBody.build(
                original: request.body, summary: request.summary, upstreamModel: snapshot.upstreamModelJSON[model],
                defaults: request.route.defaults, prefill: prefill)
            let (upstream, target, loop) = (self.upstream, snapshot.upstreamTarget(provider.id), request.channel?.eventLoop)
            let response = try await untilClientLeaves(request) {
                try await upstream.send(
                    provider: provider, target: target, key: table.keys[key], body: body, stream: true, attempt: attempt, timeout: budget, on: loop)
            }
            let status = Int(response.status.code)
            learnQuota(response.headers, status: status, key: key, snapshot)
            guard status == 200 else {
                let bytes = (try? await response.body.collect(upTo: Self.maxRefusalBytes)) ?? ByteBuffer()
                return .refused(refusedStream(request, model: model, status: status, headers: response.headers, body: bytes))
            }
            return .opened(
                UpstreamEvents(
                    response: response, firstTokenTimeout: table.retry.firstTokenTimeout, idleTimeout: table.retry.streamIdleTimeout,
                    deadlineMono: request.deadlineMono, channel: request.channel))
        } catch {
            if let channel = request.channel, !channel.isActive { return .refused(Outcome(.cancelled)) }
            return .refused(Self.openFailure(error, cancelled: Task.isCancelled))
        }
    }

    /// The most of a refusal's body read to classify it.
    static let maxRefusalBytes = 1 << 20

    /// A streaming attempt answered with a status other than 200, classified; a success status there is transient.
    func refusedStream(_ request: ChatRequest, model: ModelID, status: Int, headers: HTTPHeaders, body: ByteBuffer) -> Outcome {
        let snapshot = request.snapshot
        let outcome = snapshot.classifiers[snapshot.table.models[model].provider].classify(
            status: status, headers: headers.map { ($0.name, $0.value) }, body: Array(body.readableBytesView), now: clock.now(),
            secrets: snapshot.secrets)
        return outcome.kind == .success ? Outcome(.transient, message: "unexpected status \(status)", status: status) : outcome
    }

    /// A streaming attempt that failed before its head: no head within its budget is a silent upstream.
    static func openFailure(_ error: any Error, cancelled: Bool) -> Outcome {
        if let e = error as? UpstreamError, e == .headTimeout { return Outcome(.silent, message: "no answer within first_token_timeout") }
        return networkOutcome(error, cancelled: cancelled)
    }

    /// Reads events until the first output (content, tool calls, a finish or [DONE]). Role-only chunks are
    /// kept to send first; with `skipRole` (a continuation) they are dropped. Malformed events are dropped.
    func readUntilOutput(_ events: UpstreamEvents, _ request: ChatRequest, model: ModelID, skipRole: Bool) async -> FirstOutput {
        var pending: [[UInt8]] = []
        let classifier = request.snapshot.classifiers[request.snapshot.table.models[model].provider]
        do {
            while let event = try await events.next() {
                if StreamChunkScan.isDone(event) {
                    return .output(pending: pending, delivered: "", finishSeen: true, done: true)
                }
                guard let chunk = StreamChunkScan.scan(event) else { continue }
                if chunk.isError { return .failed(classifier.classifyStreamError(event: event, secrets: request.snapshot.secrets)) }
                if chunk.isOutput {
                    pending.append(event)
                    return .output(pending: pending, delivered: chunk.content, finishSeen: chunk.finishReason != nil, done: false)
                }
                if !skipRole { pending.append(event) }
            }
            return .failed(Outcome(.transient, message: "the stream ended before any output"))
        } catch let fault as StreamFault {
            return .failed(fault.outcomeBeforeOutput(request.snapshot.table.retry))
        } catch {
            return .failed(Self.networkOutcome(error, cancelled: Task.isCancelled))
        }
    }
}
