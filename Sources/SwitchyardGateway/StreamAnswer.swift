import HTTPTypes
import Hummingbird
import SwitchyardCore
import Synchronization

/// A streaming answer's head, body and last bookkeeping, wherever its relay runs: in a task (this file's
/// `ResponseBody`) or on the connection's loop (`StreamProxy`).
extension ChatCompletionsRoute {
    func stream(_ admitted: Admitted, plan: RoutePlan) async -> Dispatched {
        streamed(admitted, await dispatcher.startStream(admitted.chat, plan: plan))
    }

    /// A started stream as a response to relay, or its failure as a whole answer.
    func streamed(_ admitted: Admitted, _ start: Dispatcher.StreamStart) -> Dispatched {
        switch start {
        case .failed(let error, let attempts):
            return .plain(failed(error, attempts: attempts, admitted))
        case .started(let session):
            return .stream(Response(status: .ok, headers: streamHeaders(session, admitted), body: streamBody(session, admitted)))
        }
    }

    /// The head's headers of a stream whose output has begun.
    func streamHeaders(_ session: StreamSession, _ admitted: Admitted) -> HTTPFields {
        var fields = headers(admitted.chat, model: session.model, key: session.key, attempts: session.walk.attempts, cache: admitted.cacheHeader)
        fields[.contentType] = "text/event-stream"
        fields[.cacheControl] = "no-cache"
        return fields
    }

    /// The relay as a response body; with `interruption`, its continuation after the channel handler's relay was
    /// interrupted so. The bookkeeping runs once whichever way it ends, also when the body is never written.
    func streamBody(_ session: StreamSession, _ admitted: Admitted, after interruption: Outcome? = nil) -> ResponseBody {
        let (dispatcher, route) = (self.dispatcher, self)
        let end = StreamEnd { ending in route.streamEnded(session, ending, admitted) }
        return ResponseBody { writer in
            let ending = await dispatcher.relay(session, after: interruption, to: &writer)
            // A client that has gone cannot be finished for; the bookkeeping runs either way.
            if ending != .clientGone { try? await writer.finish(nil) }
            end.run(ending)
        }
    }

    /// A stream's last bookkeeping: its in-flight slot, the cache, identical requests waiting, its log line.
    func streamEnded(_ session: StreamSession, _ ending: Dispatcher.StreamEnding, _ admitted: Admitted) {
        let chat = admitted.chat
        admitted.slot.release()
        session.events?.cancel()
        let answer = admitted.cacheKey == nil ? nil : Dispatcher.answer(of: session, ending: ending)
        if let cacheKey = admitted.cacheKey, let answer { keep(answer, for: cacheKey, chat.snapshot.table) }
        admitted.ticket?.land(answer)
        let status = ending == .completed ? 200 : ending == .clientGone ? GatewayError.clientClosed.status.code : 502
        logRequest(
            chat, status: status, model: session.model, key: session.key, attempts: session.walk.attempts, started: admitted.started,
            cache: admitted.cacheHeader, error: ending == .completed ? nil : "stream \(ending)", continuations: session.continuations)
    }
}

/// A stream's last bookkeeping, run once: by the body writer when the stream ends, or, if the client left before
/// the body was written (the head's write failed, so the writer never runs), when the response is dropped.
final class StreamEnd: Sendable {
    private let finish: @Sendable (Dispatcher.StreamEnding) -> Void
    private let done = Atomic<Bool>(false)

    init(_ finish: @escaping @Sendable (Dispatcher.StreamEnding) -> Void) {
        self.finish = finish
    }

    func run(_ ending: Dispatcher.StreamEnding) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finish(ending)
    }

    deinit { run(.clientGone) }
}
