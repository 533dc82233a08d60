import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request does not arrive whole in time: counted from the connection's start, or,
/// on a kept-alive connection, from the first byte of the next request, to the request's last body byte.
/// A client that trickles a header byte a second (slowloris) is cut off instead of holding a connection for
/// ever; the idle timeout alone would not, since every byte resets it. A kept-alive connection waiting
/// quietly for its next request is left to the idle timeout.
final class RequestReadTimeout: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Phase {
        /// Bytes of a request may be on their way; the timer runs.
        case reading
        /// A whole request arrived; the answer is being made.
        case answering
        /// The answer went out; the connection waits for the next request, with no timer.
        case waiting
    }

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var phase = Phase.reading

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // The decoder emits nothing until a head is complete, so the first raw byte of a request is watched
        // for in front of it.
        try? context.pipeline.syncOperations.addHandler(RequestStartWatcher(owner: self, context: context), position: .first)
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            phase = .answering
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), phase == .answering { phase = .waiting }
        context.write(data, promise: promise)
    }

    /// Bytes reached the connection: if it was waiting between requests, a new request has begun.
    fileprivate func bytesArrived(_ context: ChannelHandlerContext) {
        guard phase == .waiting else { return }
        phase = .reading
        arm(context)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}

/// Sits first in the pipeline and tells `RequestReadTimeout` when raw bytes arrive.
private final class RequestStartWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let owner: RequestReadTimeout
    private let ownerContext: ChannelHandlerContext

    init(owner: RequestReadTimeout, context: ChannelHandlerContext) {
        self.owner = owner
        ownerContext = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner.bytesArrived(ownerContext)
        context.fireChannelRead(data)
    }
}
