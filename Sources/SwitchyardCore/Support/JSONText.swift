/// Minimal JSON text helpers for the places that write JSON by hand (translated requests and answers, replays).
///
/// Text is written a run at a time: the bytes up to the next quote, backslash or control character (`PlainRun`)
/// are copied whole, so a long prompt costs a copy rather than a look at each character.
public enum JSONText {
    /// A JSON string literal with the required escapes.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `s` as a JSON string literal: `"` and `\` escaped, `\n`, `\r` and `\t` by name, other control
    /// characters as `\u00XX`; everything else as it is. `out` grows as appends grow it: reserving the exact room
    /// here would reallocate a buffer written string by string on every call.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            out.append(UInt8(ascii: "\""))
            var i = 0
            while i < utf8.count {
                i += PlainRun.append(in: raw, from: i, asciiOnly: false, to: &out)
                guard i < utf8.count else { break }
                appendEscape(utf8[i], to: &out)
                i += 1
            }
            out.append(UInt8(ascii: "\""))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// The escape of a quote, a backslash or a control character.
    static func appendEscape(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default: out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
        }
    }
}
