import NIOCore
import NIOHTTP1

/// Holds the connection's flushes and closes while the fake decides and logs an answer, then lets them through:
/// the log entry of a request exists before the client can read any byte of its answer, or see its end.
final class FlushGate: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart

    private var holding = false
    private var heldFlush = false
    private var heldCloses: [(mode: CloseMode, promise: EventLoopPromise<Void>?)] = []

    func hold() {
        holding = true
    }

    /// Stops holding; a flush asked for meanwhile goes out now, then a close (a fault that cut the answer).
    func release(context: ChannelHandlerContext) {
        holding = false
        if heldFlush {
            heldFlush = false
            context.flush()
        }
        let closes = heldCloses
        heldCloses = []
        for close in closes { context.close(mode: close.mode, promise: close.promise) }
    }

    func flush(context: ChannelHandlerContext) {
        if holding {
            heldFlush = true
        } else {
            context.flush()
        }
    }

    /// A fault that closes the connection mid-answer (a cut) does so on release, after what it wrote went out.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if holding {
            heldCloses.append((mode, promise))
        } else {
            context.close(mode: mode, promise: promise)
        }
    }
}
