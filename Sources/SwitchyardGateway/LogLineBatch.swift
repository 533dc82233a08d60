import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The log lines an event loop's thread writes during one turn of its loop, kept in a reused buffer and
/// written together in one `write(2)` when the turn's I/O is done: at 32 connections one turn answers several
/// requests, and a `write` per request line cost about as much as formatting it. Lines stay whole and in
/// their order; a turn's lines reach the file microseconds later than they would have one by one.
final class LogLineBatch {
    private var bytes: [UInt8] = []
    private var descriptor: Int32 = -1
    private var flushScheduled = false

    /// Lines past this many bytes go out at once rather than at the turn's end.
    static let limit = 64 * 1024

    /// Each thread reads and writes only its own batch, so the non-Sendable batches are never shared.
    nonisolated(unsafe) private static let perThread = ThreadSpecificVariable<LogLineBatch>()

    private init() {
        bytes.reserveCapacity(Self.limit)
    }

    /// Lets `format` append a line to the current turn's buffer when called on an event loop's thread; false
    /// elsewhere (the caller writes the line itself).
    static func append(descriptor: Int32, _ format: (inout [UInt8]) -> Void) -> Bool {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return false }
        let batch: LogLineBatch
        if let existing = perThread.currentValue {
            batch = existing
        } else {
            batch = LogLineBatch()
            perThread.currentValue = batch
        }
        batch.append(descriptor: descriptor, loop: loop, format)
        return true
    }

    private func append(descriptor: Int32, loop: any EventLoop, _ format: (inout [UInt8]) -> Void) {
        if descriptor != self.descriptor {
            flush()
            self.descriptor = descriptor
        }
        format(&bytes)
        if bytes.count >= Self.limit {
            flush()
        } else if !flushScheduled {
            flushScheduled = true
            let this = NIOLoopBound(self, eventLoop: loop)
            loop.execute { this.value.flush() }
        }
    }

    private func flush() {
        flushScheduled = false
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBufferPointer { LineLogHandler.writeAll(descriptor, UnsafeRawBufferPointer($0)) }
        bytes.removeAll(keepingCapacity: true)
    }
}
