import NIOCore
import NIOHTTP1

/// One keep-alive HTTP/1.1 connection to an upstream origin, as the last handler of its channel: it writes an
/// exchange's request in one flush, hands the response's parts to that exchange, and holds the channel's reads
/// while the exchange's reader is behind (backpressure from the client back to the upstream).
///
/// Lives on its channel's event loop, like the pool that owns it and the exchange it serves.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let origin: UpstreamOrigin
    private unowned let pool: UpstreamPool
    private var context: ChannelHandlerContext?
    /// The exchange this connection serves now; nil while idle in the pool.
    private(set) var exchange: UpstreamExchange?
    /// Exchanges that ended cleanly on this connection: more than zero means it was reused.
    private(set) var served = 0
    private(set) var isOpen = true
    /// When the connection last went back to the pool idle, for the pool's sweep.
    var idleSince = NIODeadline.distantPast
    private var readsHeld = false
    private var readPending = false
    /// When the exchange's current bound runs out; `distantFuture` while none runs.
    private var due = NIODeadline.distantFuture
    /// One timer for all the exchanges the connection serves, moved only when a bound falls before it: on a
    /// keep-alive connection each exchange's bound lies past the last one's, so the timer is set about once per
    /// bound's length rather than once per exchange, and never cancelled when an answer comes in time.
    private var timer: Scheduled<Void>?
    /// When `timer` goes off.
    private var timerDue = NIODeadline.distantFuture

    init(origin: UpstreamOrigin, pool: UpstreamPool) {
        self.origin = origin
        self.pool = pool
    }

    var wasReused: Bool { served > 0 }
    /// Whether reads wait for the exchange's reader: silence then is the reader's, not the upstream's.
    var isHoldingReads: Bool { readsHeld }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timer?.cancel()
        timer = nil
    }

    // MARK: timing the exchange

    /// Tells the exchange (`UpstreamExchange.boundRanOut`) once `deadline` passes, unless `time(until:)` is called
    /// again first or the exchange ends.
    func time(until deadline: NIODeadline) {
        due = deadline
        guard timer == nil || timerDue > deadline else { return }
        timer?.cancel()
        timerDue = deadline
        timer = pool.loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in self?.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard let exchange, due != .distantFuture else { return }
        if NIODeadline.now() >= due {
            due = .distantFuture
            exchange.boundRanOut()
        } else {
            time(until: due)
        }
    }

    // MARK: serving an exchange

    /// Starts `exchange` on this connection: its request goes out in one write, flushed at the end of the loop's
    /// turn with the others made in it (`TurnFlush`).
    func serve(_ exchange: UpstreamExchange, head: HTTPRequestHead, body: ByteBuffer) {
        self.exchange = exchange
        guard let context, isOpen else {
            exchange.connectionLost("closed before the request was sent", on: self)
            return
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        pool.turnFlush.flush(context)
    }

    /// The exchange ended: back to the pool when the response allowed keep-alive, closed otherwise.
    func finish(_ exchange: UpstreamExchange, reusable: Bool) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        due = .distantFuture
        resumeReads()
        if reusable, isOpen {
            served += 1
            pool.release(self)
        } else {
            close()
        }
    }

    /// Holds the channel's reads until `resumeReads` (the exchange's reader is behind).
    func holdReads() {
        readsHeld = true
    }

    func resumeReads() {
        guard readsHeld else { return }
        readsHeld = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func close() {
        guard isOpen else { return }
        isOpen = false
        timer?.cancel()
        timer = nil
        context?.close(promise: nil)
    }

    // MARK: channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard let exchange else {
            // Bytes on an idle connection: the upstream broke the protocol or is closing; never reuse it.
            close()
            return
        }
        exchange.received(part, on: self)
    }

    func read(context: ChannelHandlerContext) {
        if readsHeld {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        let exchange = self.exchange
        self.exchange = nil
        pool.closed(self)
        exchange?.connectionLost("the upstream closed the connection", on: self)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let exchange = self.exchange
        self.exchange = nil
        if let decoding = error as? HTTPParserError {
            exchange?.failed(.malformed("\(decoding)"), on: self)
        } else {
            exchange?.connectionLost("\(error)", on: self)
        }
        close()
    }
}
