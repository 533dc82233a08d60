import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// A stream whose first output is in hand: the handler can now send the head, the writer relays the rest.
final class StreamSession: @unchecked Sendable {
    let request: ChatRequest
    var walk: Dispatcher.Walk
    /// The attempt being relayed; nil while the channel handler relays it on its loop, and after it.
    var events: UpstreamEvents?
    var model: ModelID
    var key: KeyID
    /// Events read before output was confirmed, re-framed and sent first.
    var pending: [[UInt8]]
    /// The answer text the client has received (or will with `pending`), for a continuation's prefill.
    var delivered: String
    var finishSeen: Bool
    var continuations = 0
    /// What a stored answer needs, gathered as events pass.
    var finishReason: String?
    var usageJSON: String?
    var answerID: String?
    var answerModel: String?
    var created: Int?
    /// Set when an error event ended the stream: such an answer is never stored.
    var endedWithError = false
    /// Set once a tool call began: a cut is then never continued (a prefill resumes text only), and the answer
    /// is not stored (a replay carries text only).
    var toolCallsSeen = false

    /// The events read before output was confirmed, framed into `buffer` to be sent first, with what a stored
    /// answer needs of them noted.
    func frames(of events: [[UInt8]], into buffer: inout ByteBuffer) {
        for event in events {
            if let chunk = StreamChunkScan.scan(event) { Dispatcher.note(chunk, in: self) }
            Dispatcher.writeFrame(event, into: &buffer)
        }
    }

    /// A chunk relayed after output began: what a stored answer needs, and the text the client now has.
    func relayed(_ chunk: StreamChunk) {
        if chunk.finishReason != nil { finishSeen = true }
        Dispatcher.note(chunk, in: self)
        delivered += chunk.content
    }

    init(request: ChatRequest, walk: Dispatcher.Walk, events: UpstreamEvents?, model: ModelID, key: KeyID, pending: [[UInt8]], delivered: String, finishSeen: Bool) {
        self.request = request
        self.walk = walk
        self.events = events
        self.model = model
        self.key = key
        self.pending = pending
        self.delivered = delivered
        self.finishSeen = finishSeen
    }
}

extension Dispatcher {
    /// Relays the rest of the stream to the client; a cut, stall or error event after output began is
    /// continued on the next prefill-capable candidate, so the client receives one complete answer or a
    /// clean error event, never a truncated stream that looks finished. A client that has gone shows as
    /// `.clientGone`, never as a thrown error, so the caller's bookkeeping (log line, cache, followers) runs.
    /// With `interruption`, the stream was relayed on the channel handler's loop until it was interrupted so:
    /// the relay goes on with its continuation.
    func relay(_ session: StreamSession, after interruption: Outcome? = nil, to writer: inout any ResponseBodyWriter) async -> StreamEnding {
        let ending: StreamEnding
        do {
            ending = try await relayEvents(session, after: interruption, to: &writer)
        } catch {
            // Only writes to the client throw.
            ending = .clientGone
        }
        if ending == .clientGone {
            let snapshot = session.request.snapshot
            log(snapshot.health.record(model: session.model, key: session.key, outcome: Outcome(.cancelled), at: clock.now()), snapshot)
        }
        session.events?.cancel()
        return ending
    }

    private func relayEvents(_ session: StreamSession, after interruption: Outcome?, to writer: inout any ResponseBodyWriter) async throws -> StreamEnding {
        var interruption = interruption
        if interruption == nil {
            var frames = ByteBuffer()
            session.frames(of: session.pending, into: &frames)
            if let events = session.events {
                try await events.writing { try await writer.write(frames) }
            } else {
                try await writer.write(frames)
            }
            session.pending = []
            session.events?.markOutputStarted()
        }
        while true {
            if let outcome = interruption {
                session.events?.cancel()
                if try await !continueStream(session, after: outcome, &writer) {
                    return .failedMidStream
                }
                interruption = nil
            }
            let ending = await pump(session, &writer)
            switch ending {
            case .completed:
                streamCompleted(session)
                return .completed
            case .clientGone, .writeFailed:
                return .clientGone
            case .interrupted(let outcome) where outcome.kind == .cancelled:
                // The task was cancelled: its client's connection closed.
                return .clientGone
            case .interrupted(let outcome):
                interruption = outcome
            default:
                return ending
            }
        }
    }

    /// A stream that reached its end: a success for its pair, and its reported tokens counted.
    func streamCompleted(_ session: StreamSession) {
        let snapshot = session.request.snapshot
        log(snapshot.health.record(model: session.model, key: session.key, outcome: .success, at: clock.now()), snapshot)
        if let usage = session.usageJSON { countTokens(session.request, model: session.model, key: session.key, UsageTokens.scan(usage)) }
    }

    enum StreamEnding: Sendable, Equatable {
        case completed
        case clientGone
        case writeFailed
        case interrupted(Outcome)
        case failedMidStream
    }

    /// Forwards events until the stream ends one way or another.
    private func pump(_ session: StreamSession, _ writer: inout any ResponseBodyWriter) async -> StreamEnding {
        // Relayed after a continuation, which always leaves its attempt here.
        guard let events = session.events else { return .interrupted(Outcome(.transient, message: "no attempt to relay")) }
        let classifier = session.request.snapshot.classifiers[session.request.snapshot.table.models[session.model].provider]
        // Events that arrived together are written together: one write and flush for all of them, made before
        // waiting for more (and before any ending), so nothing that arrived waits for what has not.
        var unwritten = ByteBuffer()
        func flush(_ writer: inout any ResponseBodyWriter) async -> Bool {
            guard unwritten.readableBytes > 0 else { return true }
            defer { unwritten.clear() }
            do { try await events.writing { try await writer.write(unwritten) } } catch { return false }
            return true
        }
        do {
            while true {
                let event: [UInt8]
                if let arrived = events.nextArrived() {
                    event = arrived
                } else {
                    guard await flush(&writer) else { return .writeFailed }
                    guard let next = try await events.next() else { break }
                    event = next
                }
                if StreamChunkScan.isDone(event) {
                    unwritten.writeImmutableBuffer(Self.done)
                    return await flush(&writer) ? .completed : .writeFailed
                }
                guard let chunk = StreamChunkScan.scan(event) else { continue }
                if chunk.isError {
                    guard await flush(&writer) else { return .writeFailed }
                    return .interrupted(classifier.classifyStreamError(event: event, secrets: session.request.snapshot.secrets))
                }
                session.relayed(chunk)
                Self.writeFrame(event, into: &unwritten)
            }
            // The upstream closed cleanly. Finished without [DONE]: finalise it; unfinished: it was cut.
            if session.finishSeen {
                do { try await writer.write(Self.done) } catch { return .writeFailed }
                return .completed
            }
            return .interrupted(Outcome(.transient, message: "the stream ended before the answer finished"))
        } catch let fault as StreamFault {
            guard let outcome = fault.outcomeAfterOutput(session.request.snapshot.table.retry) else { return .clientGone }
            return .interrupted(outcome)
        } catch {
            if session.finishSeen {
                // Cut after the finish chunk: the answer is whole; only the terminator is missing.
                do { try await writer.write(Self.done) } catch { return .writeFailed }
                return .completed
            }
            return .interrupted(Self.networkOutcome(error, cancelled: Task.isCancelled))
        }
    }

    /// Continues an interrupted stream on the next candidate that accepts a prefill. Returns false when none
    /// could, after writing an OpenAI-style error event.
    private func continueStream(_ session: StreamSession, after outcome: Outcome, _ writer: inout any ResponseBodyWriter) async throws -> Bool {
        let request = session.request
        let snapshot = request.snapshot
        let table = snapshot.table
        if session.toolCallsSeen {
            log(snapshot.health.record(model: session.model, key: session.key, outcome: outcome, at: clock.now()), snapshot)
            let error = GatewayError(
                status: .badGateway, message: "the stream was interrupted inside a tool call, which cannot be continued: \(outcome.message ?? outcome.kind.rawValue)",
                type: "upstream_error", code: "stream_interrupted")
            session.endedWithError = true
            try? await writer.write(ByteBuffer(string: error.sseEvent))
            return false
        }
        var lastFailure = outcome
        var failedModel = session.model
        var failedKey = session.key
        while true {
            if await !afterFailure(&session.walk, request, model: failedModel, key: failedKey, outcome: lastFailure) {
                if session.walk.gaveUp == .cancelled { return false }
                break
            }
            // The same model first when it takes a prefill (its other key, or its only key once more), then the others.
            guard let (model, key) = await nextPair(&session.walk, request, accept: { table.models[$0].prefill }) else { break }
            session.walk.attempts += 1
            session.continuations += 1
            failedModel = model
            failedKey = key
            switch await openStream(request, model: model, key: key, attempt: session.walk.attempts, prefill: session.delivered) {
            case .refused(let refusal):
                // A prefill rejection moves on; it is never the error the client sees.
                lastFailure = refusal.kind == .requestInvalid ? Outcome(.modelGone, message: "prefill rejected: \(refusal.message ?? "")", status: refusal.status) : refusal
                if refusal.kind == .requestInvalid {
                    // Blame nothing for a rejected prefill: the model simply cannot continue.
                    session.walk.notes.append(AttemptNote(key: table.keys[key].label, model: table.models[model].name, outcome: lastFailure))
                    session.walk.nextMove = .nextModel
                    log(snapshot.health.record(model: model, key: key, outcome: Outcome(.requestInvalid), at: clock.now()), snapshot)
                    continue
                }
                if refusal.kind == .cancelled { return false }
            case .opened(let events):
                switch await readUntilOutput(events, request, model: model, skipRole: true) {
                case .output(let pending, let delivered, let finishSeen, let done):
                    session.events = events
                    session.model = model
                    session.key = key
                    session.finishSeen = finishSeen || done
                    session.delivered += delivered
                    events.markOutputStarted()
                    var frames = ByteBuffer()
                    session.frames(of: pending, into: &frames)
                    // Waiting for a slow client is not the continuation's silence, from its first write on.
                    try await events.writing { try await writer.write(frames) }
                    if done {
                        try await writer.write(Self.done)
                        log(snapshot.health.record(model: model, key: key, outcome: .success, at: clock.now()), snapshot)
                        events.cancel()
                        // Nothing more will come: make the relay loop end cleanly.
                        session.finishSeen = true
                    }
                    return true
                case .failed(let failure):
                    events.cancel()
                    if failure.kind == .cancelled { return false }
                    lastFailure = failure
                }
            }
        }
        let error = GatewayError(
            status: .badGateway,
            message: "the stream was interrupted after \(session.delivered.count) characters and no model could continue it"
                + Self.list(session.walk.notes),
            type: "upstream_error", code: "stream_interrupted")
        session.endedWithError = true
        try? await writer.write(ByteBuffer(string: error.sseEvent))
        return false
    }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    /// Notes what a stored answer will need from a chunk.
    static func note(_ chunk: StreamChunk, in session: StreamSession) {
        if session.answerID == nil, let id = chunk.id { session.answerID = id }
        if session.answerModel == nil, let model = chunk.model { session.answerModel = model }
        if session.created == nil, let created = chunk.created { session.created = created }
        if let reason = chunk.finishReason { session.finishReason = reason }
        if let usage = chunk.usageJSON { session.usageJSON = usage }
        if chunk.hasToolCalls { session.toolCallsSeen = true }
    }

    /// The finished stream as a cacheable answer, if it is complete.
    static func answer(of session: StreamSession, ending: StreamEnding) -> CachedAnswer? {
        guard ending == .completed, !session.endedWithError, !session.toolCallsSeen, CachedAnswer.isComplete(finishReason: session.finishReason)
        else { return nil }
        let table = session.request.snapshot.table
        return CachedAnswer(
            id: session.answerID ?? "switchyard-cached", created: session.created ?? 0, upstreamModel: session.answerModel ?? table.models[session.model].upstream,
            modelName: table.models[session.model].name, keyLabel: table.keys[session.key].label, content: session.delivered,
            finishReason: session.finishReason ?? "stop", usageJSON: session.usageJSON, body: nil)
    }

    /// Appends `event` to `buffer` as an SSE `data:` event.
    static func writeFrame(_ event: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeString("data: ")
        buffer.writeBytes(event)
        buffer.writeString("\n\n")
    }
}
