import NIOCore
import Synchronization
import SwitchyardCore

/// Why an upstream stream stopped before it finished.
enum StreamFault: UInt8, Error, Sendable {
    /// No first token within `first_token_timeout`.
    case silent = 1
    /// Silent for `stream_idle_timeout` after output began.
    case stalled
    case clientGone
    case deadline

    /// The outcome of an attempt this fault ended before its first output.
    func outcomeBeforeOutput(_ retry: RetrySettings) -> Outcome {
        switch self {
        case .silent: Outcome(.silent, message: "no first token within \(retry.firstTokenTimeout.configText)")
        case .stalled: Outcome(.transient, message: "the stream stalled")
        case .clientGone: Outcome(.cancelled, message: "the client went away")
        case .deadline: Outcome(.transient, message: "the request deadline passed")
        }
    }

    /// The interruption of a stream this fault ended after output began; nil when the client has gone.
    func outcomeAfterOutput(_ retry: RetrySettings) -> Outcome? {
        switch self {
        case .stalled: Outcome(.transient, message: "the stream stalled for \(retry.streamIdleTimeout.configText)")
        case .silent: Outcome(.silent, message: "no first token in time")
        case .deadline: Outcome(.transient, message: "the request deadline passed")
        case .clientGone: nil
        }
    }
}

/// The SSE events of one upstream attempt, read from its body as the consumer asks for them, and watched by a
/// task: the watchdog ends the stream when the upstream stays silent too long, the deadline passes or the client
/// disconnects, by cancelling the upstream request, which closes its connection at once.
///
/// Nothing is read ahead of the consumer but what the body's own bounded buffer holds: a client that reads
/// slowly holds the upstream connection's reads (backpressure), and no event queue grows without bound.
final class UpstreamEvents: @unchecked Sendable {
    // One consumer at a time (the handler, then the response writer): the iterator and decoder are never shared.
    private var iterator: UpstreamResponseBody.AsyncIterator
    private var decoder = SSEDecoder()
    /// Events of the last read not taken yet: what arrived together can leave together.
    private var pending: [[UInt8]] = []
    private var taken = 0
    private let body: UpstreamResponseBody
    private let activity: Activity
    private let watchdog: Task<Void, Never>

    final class Activity: Sendable {
        let lastEvent = Atomic<UInt64>(Monotonic.now())
        let outputStarted = Atomic<Bool>(false)
        /// Set while the consumer writes output to the client: waiting for a slow client is not the upstream's silence.
        let writing = Atomic<Bool>(false)
        /// The `StreamFault` the watchdog ended the stream for; 0 while it has not.
        let fault = Atomic<UInt8>(0)

        var raised: StreamFault? { StreamFault(rawValue: fault.load(ordering: .acquiring)) }
    }

    init(
        response: UpstreamResponse, firstTokenTimeout: Duration, idleTimeout: Duration, deadlineMono: UInt64,
        channel: (any Channel)?
    ) {
        body = response.body
        iterator = response.body.makeAsyncIterator()
        let activity = Activity()
        self.activity = activity
        let body = response.body
        let firstToken = UInt64(max(firstTokenTimeout.nanoseconds, 0))
        let idle = UInt64(max(idleTimeout.nanoseconds, 0))
        watchdog = Task {
            func end(_ fault: StreamFault) {
                activity.fault.store(fault.rawValue, ordering: .releasing)
                body.cancel()
            }
            while !Task.isCancelled {
                // `writing` before `lastEvent`, and the clock after both: a write that just ended is seen with the
                // event time it stored (release/acquire), and an event stored meanwhile is never later than `now`
                // (read first, `now` could be older than it, and the unsigned silence would wrap to ages).
                let writing = activity.writing.load(ordering: .acquiring)
                let last = activity.lastEvent.load(ordering: .acquiring)
                let now = Monotonic.now()
                if now >= deadlineMono { return end(.deadline) }
                if let channel, !channel.isActive { return end(.clientGone) }
                let started = activity.outputStarted.load(ordering: .acquiring)
                let limit = started ? idle : firstToken
                let since = now > last ? now - last : 0
                if since >= limit, !writing { return end(started ? .stalled : .silent) }
                // Past the limit only while a write is waiting for the client: look again shortly.
                let wait = min(since >= limit ? 200_000_000 : limit - since, deadlineMono - now, 200_000_000)
                try? await Task.sleep(for: .nanoseconds(Int64(wait)))
            }
        }
    }

    /// The next event's data, nil at the end of the stream; throws the watchdog's `StreamFault` once it ended
    /// the stream.
    func next() async throws -> [UInt8]? {
        while taken == pending.count {
            let buffer: ByteBuffer?
            do {
                buffer = try await iterator.next()
            } catch {
                throw activity.raised ?? error
            }
            guard let buffer else { return nil }
            if let fault = activity.raised { throw fault }
            pending.removeAll(keepingCapacity: true)
            taken = 0
            buffer.withUnsafeReadableBytes { bytes in decoder.feed(bytes) { pending.append($0) } }
        }
        return take()
    }

    /// The next event when it has already arrived, without waiting for one.
    func nextArrived() -> [UInt8]? {
        taken < pending.count ? take() : nil
    }

    private func take() -> [UInt8] {
        let event = pending[taken]
        taken += 1
        if activity.outputStarted.load(ordering: .relaxed) {
            activity.lastEvent.store(Monotonic.now(), ordering: .releasing)
        }
        return event
    }

    /// Runs `write`, a write of this stream's output to the client; silence is measured again from its end.
    func writing<T>(_ write: () async throws -> T) async rethrows -> T {
        activity.writing.store(true, ordering: .releasing)
        defer {
            activity.lastEvent.store(Monotonic.now(), ordering: .releasing)
            activity.writing.store(false, ordering: .releasing)
        }
        return try await write()
    }

    /// Output has reached the client: from now on silence is measured against the idle timeout.
    func markOutputStarted() {
        activity.lastEvent.store(Monotonic.now(), ordering: .releasing)
        activity.outputStarted.store(true, ordering: .releasing)
    }

    /// Stops watching and cancels the upstream request if it is still running.
    func cancel() {
        watchdog.cancel()
        body.cancel()
    }

    deinit {
        watchdog.cancel()
        body.cancel()
    }
}
