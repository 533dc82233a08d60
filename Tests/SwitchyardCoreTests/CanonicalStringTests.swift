import Testing
@testable import SwitchyardCore

/// The canonical form of a string with escapes is its decoded text written again; written straight from the
/// escaped text (`CanonicalString`), it must be the same bytes, or be left to the decoding path.
struct CanonicalStringTests {
    /// The decoding path: decode the text, write it again.
    static func decodedAndWritten(_ escaped: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        escaped.withUnsafeBytes { JSONText.appendQuoted(JSONUnescape.string($0), to: &out) }
        return out
    }

    static let pieces: [String] =
        ["a", "plain text ", "12345678", #"\""#, #"\\"#, #"\/"#, #"\b"#, #"\f"#, #"\n"#, #"\r"#, #"\t"#, #"\u0041"#, #"\u004A"#, #"\u004a"#,
         #"\u007f"#, #"\u001b"#, #"\u0022"#, #"\u005c"#, #"\u0000"#, #"\u00e9"#, #"\ud83d\ude00"#, #"\ud800"#, #"\uZZ41"#, #"\u12"#, #"\x"#, "é", "漢"]

    static func check(_ text: String) {
        let escaped = Array(text.utf8)
        var out = Array("prefix".utf8)
        let wrote = escaped.withUnsafeBytes { CanonicalString.appendASCII(escaped: $0, to: &out) }
        if wrote {
            #expect(Array(out.dropFirst(6)) == decodedAndWritten(escaped), "\(text)")
        } else {
            #expect(out == Array("prefix".utf8), "left as it was: \(text)")
        }
    }

    @Test func writesWhatDecodingAndWritingAgainWrites() {
        for first in Self.pieces {
            for second in Self.pieces {
                for gap in ["", "abcdefghij"] {
                    Self.check(first + gap + second)
                    Self.check(gap + first + second + gap)
                }
            }
        }
    }

    @Test func everyASCIIEscapeIsWrittenStraight() {
        for value in 0..<0x80 {
            let escape = "\\u00" + (value < 0x10 ? "0" : "") + String(value, radix: 16)
            for text in [escape, "line" + escape + "next", String(repeating: "x", count: 9) + escape] {
                let escaped = Array(text.utf8)
                var out: [UInt8] = []
                let wrote = escaped.withUnsafeBytes { CanonicalString.appendASCII(escaped: $0, to: &out) }
                #expect(wrote, "\(text) is ASCII with a simple escape")
                #expect(out == Self.decodedAndWritten(escaped), "\(text)")
            }
        }
    }

    @Test func aPromptInLinesTakesTheStraightPath() {
        let text = String(repeating: #"A line of text, \"quoted\", then a tab\tand a break.\n"#, count: 40)
        let escaped = Array(text.utf8)
        var out: [UInt8] = []
        #expect(escaped.withUnsafeBytes { CanonicalString.appendASCII(escaped: $0, to: &out) })
        #expect(out == Self.decodedAndWritten(escaped))
    }
}
