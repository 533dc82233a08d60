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

    /// Feeds bytes in place. Each line is found with one scan for its newline and copied in one piece: taken a
    /// byte at a time through a generic sequence, decoding cost more than everything else a streamed token costs.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: ([UInt8]) -> Void) {
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            if line.count > Self.maxEventBytes {
                overflowed = true
                line.removeAll()
            }
            guard end < bytes.count else { return }
            endLine(emit)
            start = end + 1
        }
    }

    /// Data received after the last complete event (a stream cut mid-event leaves some).
    public var hasPartialEvent: Bool { !line.isEmpty || hasData }

    private mutating func endLine(_ emit: ([UInt8]) -> Void) {
        if line.last == 0x0D { line.removeLast() }
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData {
                emit(data)
                data.removeAll(keepingCapacity: true)
                hasData = false
            }
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        // "data:" with an optional single space.
        guard line.count >= 5, line[0] == 0x64, line[1] == 0x61, line[2] == 0x74, line[3] == 0x61, line[4] == 0x3A else { return }
        var start = 5
        if line.count > 5, line[5] == 0x20 { start = 6 }
        if hasData { data.append(0x0A) }
        data.append(contentsOf: line[start...])
        hasData = true
        if data.count > Self.maxEventBytes {
            overflowed = true
            data.removeAll()
            hasData = false
        }
    }
}
