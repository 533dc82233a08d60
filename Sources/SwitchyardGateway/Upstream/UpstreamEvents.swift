import NIOCore
import Synchronization
import SwitchyardCore

/// Why an upstream stream stopped before it finished.
enum StreamFault: Error, Sendable {
    /// No first token within `first_token_timeout`.
    case silent
    /// Silent for `stream_idle_timeout` after output began.
    case stalled
    case clientGone
    case deadline
}

/// The SSE events of one upstream attempt, read by a task of their own and watched by another:
/// the watchdog ends the stream when the upstream stays silent too long, the deadline passes or the
/// client disconnects, and cancelling the reader cancels the upstream request at once.
final class UpstreamEvents: @unchecked Sendable {
    // One consumer at a time (the handler, then the response writer): the iterator is never shared.
    // Each element holds the events of one read from the upstream, so what arrived together can leave together.
    private var iterator: AsyncThrowingStream<[[UInt8]], any Error>.AsyncIterator
    /// Events of the last read not taken yet.
    private var pending: [[UInt8]] = []
    private var taken = 0
    private let activity: Activity
    private let reader: Task<Void, Never>
    private let watchdog: Task<Void, Never>

    final class Activity: Sendable {
        let lastEvent = Atomic<UInt64>(Monotonic.now())
        let outputStarted = Atomic<Bool>(false)
    }

    init(
        response: UpstreamResponse, firstTokenTimeout: Duration, idleTimeout: Duration, deadlineMono: UInt64,
        channel: (any Channel)?
    ) {
        let (stream, continuation) = AsyncThrowingStream<[[UInt8]], any Error>.makeStream(bufferingPolicy: .unbounded)
        iterator = stream.makeAsyncIterator()
        let activity = Activity()
        self.activity = activity
        let body = response.body
        reader = Task {
            var decoder = SSEDecoder()
            do {
                for try await buffer in body {
                    var events: [[UInt8]] = []
                    buffer.withUnsafeReadableBytes { bytes in decoder.feed(bytes) { events.append($0) } }
                    if !events.isEmpty { continuation.yield(events) }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        let firstToken = UInt64(max(firstTokenTimeout.nanoseconds, 0))
        let idle = UInt64(max(idleTimeout.nanoseconds, 0))
        watchdog = Task {
            while !Task.isCancelled {
                let now = Monotonic.now()
                if now >= deadlineMono {
                    continuation.finish(throwing: StreamFault.deadline)
                    return
                }
                if let channel, !channel.isActive {
                    continuation.finish(throwing: StreamFault.clientGone)
                    return
                }
                let started = activity.outputStarted.load(ordering: .relaxed)
                let limit = started ? idle : firstToken
                let since = now &- activity.lastEvent.load(ordering: .relaxed)
                if since >= limit {
                    continuation.finish(throwing: started ? StreamFault.stalled : StreamFault.silent)
                    return
                }
                let wait = min(limit - since, deadlineMono - now, 200_000_000)
                try? await Task.sleep(for: .nanoseconds(Int64(wait)))
            }
        }
    }

    /// The next event's data, nil at the end of the stream.
    func next() async throws -> [UInt8]? {
        while taken == pending.count {
            guard let events = try await iterator.next() else { return nil }
            (pending, taken) = (events, 0)
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
            activity.lastEvent.store(Monotonic.now(), ordering: .relaxed)
        }
        return event
    }

    /// Output has reached the client: from now on silence is measured against the idle timeout.
    func markOutputStarted() {
        activity.lastEvent.store(Monotonic.now(), ordering: .relaxed)
        activity.outputStarted.store(true, ordering: .relaxed)
    }

    /// Stops reading and watching; the upstream request is cancelled if still running.
    func cancel() {
        reader.cancel()
        watchdog.cancel()
    }

    deinit {
        reader.cancel()
        watchdog.cancel()
    }
}
