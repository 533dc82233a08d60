import NIOCore
import NIOEmbedded
import Testing

@testable import SwitchyardGateway

/// When `TurnFlush` lets written bytes out: at once after a quiet turn, at the turn's end after a busy one.
struct TurnFlushTests {
    /// A channel on `loop` whose context `TurnFlush` is given, as the gateway's handlers give theirs.
    final class Writer: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var context: ChannelHandlerContext!

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
        }

        /// Writes `text` unflushed and hands the flush to `TurnFlush`.
        func send(_ text: String) {
            context.write(NIOAny(ByteBuffer(string: text)), promise: nil)
            TurnFlush.onThisThread.flush(context)
        }
    }

    struct Peer {
        let channel: EmbeddedChannel
        let writer = Writer()

        init(_ loop: EmbeddedEventLoop) throws {
            channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(writer)
        }

        /// What has been flushed to the peer since last asked.
        func received() throws -> [String] {
            var out: [String] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(String(buffer: buffer)) }
            return out
        }
    }

    /// Synchronous, so that it stays on one thread: `TurnFlush` keeps one state per thread.
    @Test func busyTurnsFlushTogetherAtTheirEndQuietOnesAtOnce() throws {
        let loop = EmbeddedEventLoop()
        let (a, b, c) = (try Peer(loop), try Peer(loop), try Peer(loop))
        // A quiet turn first, whatever this thread did before: the next turn flushes at once.
        a.writer.send("settle")
        loop.run()
        #expect(try a.received() == ["settle"])

        // After a quiet turn, each flush goes at once; this turn flushes twice, so it is busy.
        a.writer.send("a1")
        #expect(try a.received() == ["a1"])
        b.writer.send("b1")
        #expect(try b.received() == ["b1"])
        loop.run()

        // After a busy turn, flushes wait for the turn's end, then go together.
        a.writer.send("a2")
        c.writer.send("c2")
        #expect(try a.received().isEmpty, "flushed before the turn ended")
        #expect(try c.received().isEmpty)
        loop.run()
        #expect(try a.received() == ["a2"])
        #expect(try c.received() == ["c2"])

        // A turn with one flush, after a busy one, still waits; the turn after it is quiet again.
        b.writer.send("b3")
        #expect(try b.received().isEmpty)
        loop.run()
        #expect(try b.received() == ["b3"])
        c.writer.send("c4")
        #expect(try c.received() == ["c4"])
        loop.run()
        for peer in [a, b, c] { _ = try peer.channel.finish() }
    }
}
