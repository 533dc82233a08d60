import NIOCore
import NIOHTTP1

/// What the owner of an exchange hears, on the exchange's event loop: the head, the body's parts, then the end;
/// or a failure at any point, and nothing after it.
protocol UpstreamExchangeDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    /// A part of the body; false holds further reads until the exchange's `resumeReading()`.
    func upstreamBody(_ part: ByteBuffer) -> Bool
    func upstreamEnd()
    func upstreamFailed(_ error: UpstreamError)
}

/// One request to an upstream and its response, over a pooled connection of the pool's event loop.
///
/// Bounds: the response head must arrive within `headTimeout` of the start (connecting and sending included),
/// and the body may not be silent for longer than `readTimeout` between two parts. The connection's one timer
/// keeps both (`UpstreamConnection.time(until:)`), so an answer on a reused connection sets no timer of its own;
/// only a wait for a connection (connecting, or the origin at its bound) has one. A reused connection that
/// fails before any byte of the response (the upstream closed it while idle) is retried once on a fresh one;
/// never after a byte arrived. A connection is reused only after a response that ended cleanly with keep-alive.
final class UpstreamExchange {
    private enum Phase {
        case ready, acquiring, awaitingHead, receivingBody, done
    }

    let pool: UpstreamPool
    let origin: UpstreamOrigin
    private let head: HTTPRequestHead
    private let body: ByteBuffer
    private let headTimeout: TimeAmount
    private let readTimeout: TimeAmount
    /// Held until the exchange ends, then let go (the delegate usually holds the exchange too).
    private var delegate: (any UpstreamExchangeDelegate)?
    private var phase = Phase.ready
    private var connection: UpstreamConnection?
    /// When the head must have come by: set at the start, counting the wait for a connection.
    private var headDue = NIODeadline.distantFuture
    /// Times the wait for a connection; the connection times the rest.
    private var waitTimer: Scheduled<Void>?
    /// When the last part arrived, for the read timeout (one timer re-armed lazily, not one per part).
    private var lastRead = NIODeadline.now()
    private var retriedOnFresh = false
    private var keepAlive = false

    init(
        pool: UpstreamPool, origin: UpstreamOrigin, head: HTTPRequestHead, body: ByteBuffer, headTimeout: TimeAmount, readTimeout: TimeAmount,
        delegate: any UpstreamExchangeDelegate
    ) {
        self.pool = pool
        self.origin = origin
        self.head = head
        self.body = body
        self.headTimeout = headTimeout
        self.readTimeout = readTimeout
        self.delegate = delegate
    }

    var isDone: Bool { phase == .done }

    /// Gets a connection and sends the request.
    func start() {
        guard phase == .ready else { return }
        phase = .acquiring
        headDue = .now() + headTimeout
        acquire()
    }

    /// Ends the exchange at once: the connection is closed (never reused mid-response) and the delegate hears
    /// `.cancelled`.
    func cancel() {
        fail(.cancelled)
    }

    /// Lets the connection read again after the delegate held it.
    func resumeReading() {
        connection?.resumeReads()
    }

    private func acquire() {
        pool.acquire(origin, fresh: retriedOnFresh) { [self] result in
            switch result {
            case .success(let connection):
                guard phase == .acquiring else {
                    // Cancelled or timed out while waiting: the connection goes back unused.
                    pool.release(connection)
                    return
                }
                waitTimer?.cancel()
                waitTimer = nil
                self.connection = connection
                phase = .awaitingHead
                connection.time(until: headDue)
                connection.serve(self, head: head, body: body)
            case .failure(let error):
                guard phase == .acquiring else { return }
                fail(error)
            }
        }
        // No idle connection was at hand: the wait counts against the head's bound.
        if phase == .acquiring, waitTimer == nil {
            waitTimer = pool.loop.assumeIsolated().scheduleTask(deadline: headDue) { [weak self] in self?.boundRanOut() }
        }
    }

    // MARK: from the connection

    func received(_ part: HTTPClientResponsePart, on connection: UpstreamConnection) {
        guard connection === self.connection, phase == .awaitingHead || phase == .receivingBody else { return }
        switch part {
        case .head(let responseHead):
            // 1xx answers are interim; the real head follows.
            guard responseHead.status.code >= 200 else { return }
            phase = .receivingBody
            keepAlive = responseHead.isKeepAlive
            lastRead = .now()
            connection.time(until: lastRead + readTimeout)
            delegate?.upstreamHead(responseHead)
        case .body(let part):
            lastRead = .now()
            if delegate?.upstreamBody(part) == false { connection.holdReads() }
        case .end:
            guard phase == .receivingBody else { return }
            phase = .done
            self.connection = nil
            connection.finish(self, reusable: keepAlive)
            let delegate = self.delegate
            self.delegate = nil
            delegate?.upstreamEnd()
        }
    }

    /// The connection closed or broke. Before any response byte on a reused connection: once more on a fresh one.
    func connectionLost(_ why: String, on connection: UpstreamConnection) {
        guard connection === self.connection, phase != .done else { return }
        self.connection = nil
        if phase == .awaitingHead, connection.wasReused, !retriedOnFresh {
            retriedOnFresh = true
            phase = .acquiring
            acquire()
            return
        }
        fail(.connectionLost(why))
    }

    func failed(_ error: UpstreamError, on connection: UpstreamConnection) {
        guard connection === self.connection else { return }
        fail(error)
    }

    // MARK: ending

    private func fail(_ error: UpstreamError) {
        guard phase != .done else { return }
        phase = .done
        waitTimer?.cancel()
        waitTimer = nil
        if let connection {
            self.connection = nil
            connection.finish(self, reusable: false)
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(error)
    }

    /// The current bound passed (told by the connection, or by the wait's timer). Before the head: the head came
    /// too late. After: the body's silence is checked, and the connection told when it would be too long.
    func boundRanOut() {
        waitTimer = nil
        switch phase {
        case .acquiring, .awaitingHead:
            fail(.headTimeout)
        case .receivingBody:
            if connection?.isHoldingReads == true { lastRead = .now() }
            let due = lastRead + readTimeout
            if NIODeadline.now() >= due { fail(.readTimeout) } else { connection?.time(until: due) }
        case .ready, .done:
            break
        }
    }
}
