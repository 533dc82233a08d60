/// How far a JSON string's text runs without a byte that needs a look, found eight bytes at a time.
///
/// Prompts are mostly plain text, and the scan, the cache key and the stream scan each walk every byte of them: a
/// 22 KB prompt cost them about 1.5 ns a byte one at a time. A word is checked whole with the usual bit tricks (a
/// byte equal to `"` or `\`, below 0x20, or, when asked, at or above 0x80); the first byte that needs a look is
/// the lowest one flagged, since a false flag only ever stands above a true one.
enum PlainRun {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// The number of bytes from `start` on, before `bytes.count`, that are neither `"`, `\` nor a control
    /// character; with `asciiOnly`, nor a byte of a multi-byte UTF-8 sequence either.
    @inline(__always)
    static func length(in bytes: UnsafeRawBufferPointer, from start: Int, asciiOnly: Bool) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let end = bytes.count
        var i = start
        while i + 8 <= end {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let flags = needsALook(word, asciiOnly: asciiOnly)
            if flags != 0 { return i - start + (flags.trailingZeroBitCount >> 3) }
            i += 8
        }
        while i < end {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 || (asciiOnly && c >= 0x80) { break }
            i += 1
        }
        return i - start
    }

    /// Appends the run `length` finds from `start` to `out`, whole; returns its length.
    @inline(__always)
    static func append(in bytes: UnsafeRawBufferPointer, from start: Int, asciiOnly: Bool, to out: inout [UInt8]) -> Int {
        let count = length(in: bytes, from: start, asciiOnly: asciiOnly)
        if count > 0, let base = bytes.baseAddress {
            out.append(contentsOf: UnsafeBufferPointer(start: (base + start).assumingMemoryBound(to: UInt8.self), count: count))
        }
        return count
    }

    /// The high bit of each byte of `word` that needs a look (and maybe of some bytes above the first such).
    @inline(__always)
    static func needsALook(_ word: UInt64, asciiOnly: Bool) -> UInt64 {
        let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
        let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
        var flags = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
        if asciiOnly { flags |= word }
        return flags & highBits
    }
}
