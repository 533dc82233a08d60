#if canImport(Glibc)
import Glibc
#endif

/// Splits a server-sent-events byte stream into events, however the bytes are chunked.
///
/// Only `data:` fields matter for chat completions; comment lines (`: OPENROUTER PROCESSING`),
/// `event:`/`id:`/`retry:` fields and blank keep-alives are dropped here and never reach a client.
public struct SSEDecoder: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    /// An event larger than this is a broken upstream, not an answer.
    public static let maxEventBytes = 4 << 20
    public private(set) var overflowed = false

    public init() {}

    /// Feeds bytes; calls `emit` with each complete event's data (multi-line data joined by `\n`).
    public mutating func feed(_ bytes: [UInt8], emit: ([UInt8]) -> Void) {
        bytes.withUnsafeBytes { feed($0, emit: emit) }
    }

    /// Feeds bytes in place. Each newline is found with `memchr`, and a line that lies whole in `bytes` is read
    /// where it is; only a line split between two reads is carried over in `line`. Taken a byte at a time through
    /// a generic sequence, decoding cost more than everything else a streamed token costs.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: ([UInt8]) -> Void) {
        guard let base = bytes.baseAddress else { return }
        var start = 0
        while start < bytes.count {
            guard let found = memchr(base + start, 0x0A, bytes.count - start) else {
                carry(UnsafeRawBufferPointer(rebasing: bytes[start...]))
                return
            }
            let end = base.distance(to: UnsafeRawPointer(found))
            let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if line.isEmpty {
                endLine(piece, emit)
            } else {
                carry(piece)
                var carried: [UInt8] = []
                swap(&carried, &line)
                carried.withUnsafeBytes { endLine($0, emit) }
                carried.removeAll(keepingCapacity: true)
                swap(&carried, &line)
            }
            start = end + 1
        }
    }

    /// Keeps the start of a line whose end has not arrived.
    private mutating func carry(_ piece: UnsafeRawBufferPointer) {
        line.append(contentsOf: piece)
        if line.count > Self.maxEventBytes {
            overflowed = true
            line.removeAll()
        }
    }

    /// Data received after the last complete event (a stream cut mid-event leaves some).
    public var hasPartialEvent: Bool { !line.isEmpty || hasData }

    private mutating func endLine(_ raw: UnsafeRawBufferPointer, _ emit: ([UInt8]) -> Void) {
        var count = raw.count
        if count > 0, raw[count - 1] == 0x0D { count -= 1 }
        if count == 0 {
            if hasData {
                emit(data)
                data.removeAll(keepingCapacity: true)
                hasData = false
            }
            return
        }
        if raw[0] == UInt8(ascii: ":") { return }
        // "data:" with an optional single space.
        guard count >= 5, raw[0] == 0x64, raw[1] == 0x61, raw[2] == 0x74, raw[3] == 0x61, raw[4] == 0x3A else { return }
        var start = 5
        if count > 5, raw[5] == 0x20 { start = 6 }
        if hasData { data.append(0x0A) }
        data.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<count]))
        hasData = true
        if data.count > Self.maxEventBytes {
            overflowed = true
            data.removeAll()
            hasData = false
        }
    }
}
