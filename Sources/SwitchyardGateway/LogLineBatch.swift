import Locking
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The log lines an event loop's thread writes, kept in a reused buffer and written together in one `write(2)`.
///
/// Every request writes a line, so a line's syscall is a request's cost: a `write` per turn of the loop still cost
/// about 2 µs a request at 8 connections and 10 µs at one. Request lines therefore wait up to `delay` for others
/// to share their `write` (as nginx's `access_log … buffer= flush=` does); any other line goes out at once,
/// behind the lines held before it. Lines stay whole and in their order. `flushAll()` writes what is held when
/// the process ends; a process killed outright loses at most the last `delay` of request lines.
final class LogLineBatch: Sendable {
    private struct Held {
        var bytes: [UInt8] = []
        var descriptor: Int32 = -1
        var flushScheduled = false

        mutating func write() {
            guard !bytes.isEmpty else { return }
            bytes.withUnsafeBufferPointer { LineLogHandler.writeAll(descriptor, UnsafeRawBufferPointer($0)) }
            bytes.removeAll(keepingCapacity: true)
        }
    }

    /// Taken by the loop's thread for each line and by `flushAll` at the end: uncontended but for that.
    private let held: Locked<Held>

    /// How long a request line may wait for others to share its `write`.
    static let delay = TimeAmount.milliseconds(20)
    /// Lines past this many bytes go out at once.
    static let limit = 64 * 1024

    /// Each loop thread appends to its own batch.
    private static let perThread = ThreadSpecificVariable<LogLineBatch>()
    /// The batches of threads still running, for `flushAll`; a thread's batch ends with it (`deinit`).
    private static let all = Locked<[Weak]>([])

    private struct Weak {
        weak var batch: LogLineBatch?
    }

    private init() {
        var held = Held()
        held.bytes.reserveCapacity(Self.limit)
        self.held = Locked(held)
    }

    /// The thread has ended: what it held goes out.
    deinit {
        held.withLock { $0.write() }
    }

    /// Lets `format` append a line to the loop thread's batch, written within `delay` (at once when nil); false
    /// off an event loop's thread (the caller writes the line itself).
    static func append(descriptor: Int32, delay: TimeAmount?, _ format: (inout [UInt8]) -> Void) -> Bool {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return false }
        let batch = perThread.currentValue ?? made()
        if batch.append(descriptor: descriptor, now: delay == nil, format), let delay {
            loop.scheduleTask(in: delay) { batch.flush() }
        }
        return true
    }

    /// Writes every batch's held lines: when the process ends.
    static func flushAll() {
        for entry in all.withLock({ $0 }) { entry.batch?.flush() }
    }

    private static func made() -> LogLineBatch {
        let batch = LogLineBatch()
        perThread.currentValue = batch
        all.withLock { entries in
            entries.removeAll { $0.batch == nil }
            entries.append(Weak(batch: batch))
        }
        return batch
    }

    /// Appends the line; true when a flush must be scheduled for it.
    private func append(descriptor: Int32, now: Bool, _ format: (inout [UInt8]) -> Void) -> Bool {
        held.withLock { held in
            if descriptor != held.descriptor {
                held.write()
                held.descriptor = descriptor
            }
            format(&held.bytes)
            if now || held.bytes.count >= Self.limit {
                held.write()
                return false
            }
            if held.flushScheduled { return false }
            held.flushScheduled = true
            return true
        }
    }

    private func flush() {
        held.withLock { held in
            held.flushScheduled = false
            held.write()
        }
    }
}
