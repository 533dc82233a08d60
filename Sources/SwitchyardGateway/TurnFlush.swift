import NIOCore
import NIOPosix

/// Flushes written answers and upstream requests together once the event loop has handled the I/O of its current
/// turn, while the loop is busy; at once while it is not.
///
/// A flush whose bytes reach a peer that sleeps (the client's or the upstream's process waiting in `epoll_wait`)
/// wakes it, and a wake-up that crosses CPUs was the largest kernel cost per request: a sixth of the gateway's CPU
/// at 32 connections on this VM (`sock_def_readable` → `_raw_spin_unlock_irqrestore`). When one turn makes several
/// answers and requests, flushed together their peers wake once for all of them. When a turn makes one (one
/// connection), holding it back would only add the rest of the turn's work to its latency. So a turn defers its
/// flushes to its end when the turn before it flushed more than once, and flushes at once otherwise.
final class TurnFlush: @unchecked Sendable {
    /// Contexts to flush at the end of this turn.
    private var pending: [ChannelHandlerContext] = []
    /// The contexts being flushed; swapped with `pending` so neither list is copied.
    private var flushing: [ChannelHandlerContext] = []
    /// Flushes asked for in this turn so far.
    private var flushes = 0
    /// Whether this turn defers its flushes: the last turn that flushed asked for more than one.
    private var deferring = false
    /// Made once: ends the turn, given to `execute` by the turn's first flush.
    private var endTurn: (@Sendable () -> Void)?

    /// Each event loop's thread has its own, touched by that thread only (hence `@unchecked Sendable`).
    private static let perThread = ThreadSpecificVariable<TurnFlush>()

    private init() {}

    /// The calling thread's; a handler that flushes on every request keeps its loop's, so that each flush is not
    /// a thread-local lookup.
    static var onThisThread: TurnFlush { perThread.currentValue ?? made() }

    /// Flushes `context` now or at the end of the loop's current turn; call on `context`'s event loop, with that
    /// loop's thread's `TurnFlush`.
    func flush(_ context: ChannelHandlerContext) {
        context.eventLoop.assertInEventLoop()
        assert(self === Self.perThread.currentValue, "another thread's TurnFlush")
        // Tasks run after the turn's I/O events are handled.
        if flushes == 0 { context.eventLoop.execute(endTurn!) }
        flushes += 1
        if deferring {
            pending.append(context)
        } else {
            context.flush()
        }
    }

    /// The calling thread's, made on its first flush.
    private static func made() -> TurnFlush {
        let batch = TurnFlush()
        batch.endTurn = { [weak batch] in batch?.turnEnded() }
        perThread.currentValue = batch
        return batch
    }

    private func turnEnded() {
        deferring = flushes > 1
        flushes = 0
        swap(&pending, &flushing)
        // A flush may write and come back here (a failed write closing its channel): that goes to `pending`.
        for context in flushing { context.flush() }
        flushing.removeAll(keepingCapacity: true)
    }
}
