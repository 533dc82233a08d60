/// A JSON string's canonical form written straight from its escaped text, when that text is ASCII.
///
/// The canonical form of a string with escapes is its decoded text written again by `JSONText` (so `\u0041` and
/// `A` are one key). Prompts in lines hold an escape every few dozen bytes, and decoding them into a `String` to
/// write it again cost as much as hashing them; this writes the same bytes in one pass. Anything it does not
/// handle (non-ASCII text or escapes, surrogates, malformed escapes) is left to the decoding path.
enum CanonicalString {
    /// Appends the canonical form (quotes included) of the string whose text between its quotes is `escaped`, and
    /// returns true; or leaves `out` as it was and returns false when the text is not plain ASCII with simple
    /// escapes.
    static func appendASCII(escaped: UnsafeRawBufferPointer, to out: inout [UInt8]) -> Bool {
        let mark = out.count
        out.append(UInt8(ascii: "\""))
        var i = 0
        while i < escaped.count {
            let plain = PlainRun.append(in: escaped, from: i, asciiOnly: true, to: &out)
            if plain > 0 {
                i += plain
                continue
            }
            guard escaped[i] == UInt8(ascii: "\\"), i + 1 < escaped.count, let (byte, length) = decodedByte(escaped, escapeAt: i) else {
                out.removeSubrange(mark...)
                return false
            }
            appendWritten(byte, to: &out)
            i += length
        }
        out.append(UInt8(ascii: "\""))
        return true
    }

    /// The ASCII byte the escape at `i` stands for and the escape's length; nil for one that is not ASCII or not
    /// well formed.
    private static func decodedByte(_ text: UnsafeRawBufferPointer, escapeAt i: Int) -> (UInt8, Int)? {
        switch text[i + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return (text[i + 1], 2)
        case UInt8(ascii: "n"): return (0x0A, 2)
        case UInt8(ascii: "r"): return (0x0D, 2)
        case UInt8(ascii: "t"): return (0x09, 2)
        case UInt8(ascii: "b"): return (0x08, 2)
        case UInt8(ascii: "f"): return (0x0C, 2)
        case UInt8(ascii: "u"):
            guard i + 6 <= text.count else { return nil }
            var value = 0
            for k in (i + 2)..<(i + 6) {
                guard let digit = hexValue(text[k]) else { return nil }
                value = value << 4 | digit
            }
            return value < 0x80 ? (UInt8(value), 6) : nil
        default:
            return nil
        }
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(c - UInt8(ascii: "A")) + 10
        default: nil
        }
    }

    /// `byte` as `JSONText` writes it inside a string.
    private static func appendWritten(_ byte: UInt8, to out: inout [UInt8]) {
        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 {
            JSONText.appendEscape(byte, to: &out)
        } else {
            out.append(byte)
        }
    }
}
