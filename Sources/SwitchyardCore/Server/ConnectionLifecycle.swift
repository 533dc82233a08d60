/// When a client connection is closed: a request that does not arrive whole within the read timeout (counted
/// from its first byte, or from the connection's start), a kept-alive connection quiet for the idle timeout,
/// and, once the server is shutting down, the end of the last answer in flight.
///
/// Pure and clock-injected (monotonic nanoseconds). The connection's handler keeps one timer, due at
/// `deadline` or earlier, and asks `timerFired` when it goes off; no event ever moves `deadline` earlier than a
/// timer already set for the old one, so a busy connection sets a timer about once per timeout, not once per
/// request. A slow reader (slowloris) is cut off however many bytes it trickles; the idle timeout alone would not,
/// since every byte counts as activity.
public struct ConnectionLifecycle: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case none
        case close
    }

    enum Phase: Sendable, Equatable {
        /// Bytes of a request may be on their way since then; the read timeout runs.
        case reading(since: UInt64)
        /// Every request read is being answered; no timer is needed.
        case answering
        /// Nothing in flight since `since`; the idle timeout runs. `checked` is when the timer last looked: a
        /// request beginning after it cannot be due before `checked + readTimeout`.
        case waiting(since: UInt64, checked: UInt64)
    }

    public let readTimeout: UInt64
    public let idleTimeout: UInt64
    private(set) var phase: Phase
    /// Requests whose head came in and whose answer has not ended.
    public private(set) var inFlight = 0
    /// The server asked its connections to finish: close once nothing is in flight.
    public private(set) var quiescing = false

    public init(readTimeout: Duration, idleTimeout: Duration, now: UInt64) {
        self.readTimeout = UInt64(max(0, readTimeout.nanoseconds))
        self.idleTimeout = UInt64(max(0, idleTimeout.nanoseconds))
        phase = .reading(since: now)
    }

    /// When the connection's timer must go off next; nil while every request read is being answered.
    public var deadline: UInt64? {
        switch phase {
        case .reading(let since): return since &+ readTimeout
        case .answering: return nil
        case .waiting(let since, let checked): return min(since &+ idleTimeout, checked &+ readTimeout)
        }
    }

    /// Raw bytes came in: on a waiting connection, a new request has begun.
    public mutating func bytesArrived(now: UInt64) {
        if case .waiting = phase { phase = .reading(since: now) }
    }

    /// A request's head was read.
    public mutating func requestBegan(now: UInt64) {
        inFlight += 1
        switch phase {
        case .reading: break
        case .answering, .waiting: phase = .reading(since: now)
        }
    }

    /// A request's last part was read: its answer is being made.
    public mutating func requestRead() {
        phase = .answering
    }

    /// An answer's last part was written.
    public mutating func answerEnded(now: UInt64) -> Action {
        inFlight = max(0, inFlight - 1)
        guard inFlight == 0 else { return .none }
        if quiescing { return .close }
        if case .answering = phase { phase = .waiting(since: now, checked: now) }
        return .none
    }

    /// The server is shutting down: close now if nothing is in flight, else after the last answer.
    public mutating func quiesce() -> Action {
        quiescing = true
        return inFlight == 0 ? .close : .none
    }

    /// The connection's timer went off.
    public mutating func timerFired(now: UInt64) -> Action {
        switch phase {
        case .reading(let since):
            return now >= since &+ readTimeout ? .close : .none
        case .answering:
            return .none
        case .waiting(let since, _):
            if now >= since &+ idleTimeout { return .close }
            phase = .waiting(since: since, checked: now)
            return .none
        }
    }
}
