import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Writes a stream's answer from its task to the client's connection through `ChatChannelHandler`, on the
/// connection's loop. Each write waits until its part is handed to the socket, so a client that reads slowly
/// holds the relay, and with it the upstream's reads: nothing queues without bound.
struct ChannelStreamWriter: ResponseBodyWriter {
    let handler: NIOLoopBound<ChatChannelHandler>
    let context: NIOLoopBound<ChannelHandlerContext>
    /// Set once the answer's end is written.
    let progress: Progress

    final class Progress: Sendable {
        let ended = Atomic(false)
    }

    private var loop: any EventLoop { context.eventLoop }

    /// Sends `response`: its head, then its body as its writer makes it. A client gone before the end is no
    /// error here; the stream's own bookkeeping notices it.
    static func send(_ response: Response, handler: NIOLoopBound<ChatChannelHandler>, context: NIOLoopBound<ChannelHandlerContext>) async {
        await send(head: (response.status, response.headers), body: response.body, handler: handler, context: context)
    }

    /// Sends `body`, after `head` unless the head is already out (a stream the channel handler began relaying).
    static func send(
        head: (HTTPResponse.Status, HTTPFields)?, body: ResponseBody, handler: NIOLoopBound<ChatChannelHandler>,
        context: NIOLoopBound<ChannelHandlerContext>
    ) async {
        let loop = context.eventLoop
        let writer = ChannelStreamWriter(handler: handler, context: context, progress: Progress())
        do {
            if let (status, fields) = head {
                try await written(on: loop) { handler.value.writeStreamHead(context.value, status: status, fields: fields, written: $0) }
            }
            try await body.write(writer)
        } catch {}
        // A writer that stopped without its end leaves the answer unfinishable: the connection closes.
        loop.execute {
            if !writer.progress.ended.load(ordering: .relaxed) { handler.value.abandonStream(context.value) }
        }
    }

    private init(handler: NIOLoopBound<ChatChannelHandler>, context: NIOLoopBound<ChannelHandlerContext>, progress: Progress) {
        self.handler = handler
        self.context = context
        self.progress = progress
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        let (handler, context, loop) = (self.handler, self.context, self.loop)
        try await Self.written(on: loop) { handler.value.writeStreamPart(context.value, buffer, written: $0) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let (handler, context, progress, loop) = (self.handler, self.context, self.progress, self.loop)
        try await Self.written(on: loop) {
            progress.ended.store(true, ordering: .relaxed)
            handler.value.endStream(context.value, written: $0)
        }
    }

    /// Runs `write` on `loop` with a promise of its own and waits until what it wrote is handed to the socket.
    private static func written(on loop: any EventLoop, _ write: @escaping @Sendable (EventLoopPromise<Void>) -> Void) async throws {
        try await loop.flatSubmit {
            let written = loop.makePromise(of: Void.self)
            write(written)
            return written.futureResult
        }.get()
    }
}
