import Foundation
import Testing
@testable import SwitchyardCore

/// Strings are read eight bytes at a time (`PlainRun`): whatever needs a look must be found wherever it falls in a
/// word, in the request scan (token cost, validation), the cache key's reader and the stream scan's.
struct PlainRunTests {
    /// What stands between the plain runs: its JSON text and the text it decodes to.
    static let specials: [(json: String, text: String)] = [
        ("", ""), (#"\n"#, "\n"), (#"\""#, "\""), (#"\\"#, "\\"), (#"\u00e9"#, "é"), ("é", "é"), ("漢", "漢"), ("😀", "😀"),
        (#"\ud83d\ude00"#, "😀"), ("\u{7F}", "\u{7F}"),
    ]

    static func body(_ content: String) -> String {
        #"{"model":"m","messages":[{"role":"user","content":"\#(content)"}]}"#
    }

    @Test func theScanChargesEveryStringAsItsDecodedText() throws {
        for before in 0..<17 {
            for after in [0, 1, 7, 8, 9, 23] {
                for special in Self.specials {
                    let a = String(repeating: "a", count: before), b = String(repeating: "b", count: after)
                    let scan = try ChatRequestScan.scan(Self.body(a + special.json + b))
                    let expected = TokenEstimate.messages([("user", a + special.text + b)])
                    #expect(scan.estimatedPromptTokens == expected, "\(before) + \(special.json) + \(after)")
                }
            }
        }
    }

    @Test func theScanRefusesAControlCharacterOrBrokenUTF8WhereverItFalls() {
        for before in 0..<17 {
            let a = Array(String(repeating: "a", count: before).utf8)
            let cases: [([UInt8], String)] = [([0x01], "control character"), ([0x1F], "control character"), ([0xC3, 0x28], "UTF-8"), ([0xFF], "UTF-8")]
            for (bad, message) in cases {
                var bytes = Array(Self.body("").utf8)
                let at = bytes.count - 4  // between the content's quotes
                bytes.insert(contentsOf: a + bad + Array("tail".utf8), at: at)
                let error = #expect(throws: RequestScanError.self) { try ChatRequestScan.scan(bytes) }
                #expect(error?.message.contains(message) == true, "\(before) + \(bad): \(error?.message ?? "no error")")
            }
        }
    }

    @Test func theReaderFindsEachStringsEndAndDecodesIt() {
        for before in 0..<17 {
            for after in [0, 1, 7, 8, 9, 23] {
                for special in Self.specials {
                    let text = String(repeating: "a", count: before) + special.json + String(repeating: "b", count: after)
                    let json = Array((#"[""# + text + #"",1]"#).utf8)
                    let read = json.withUnsafeBytes { raw -> (String?, Bool) in
                        var reader = JSONReader(bytes: raw)
                        reader.i = 1
                        let string = reader.string()
                        return (string, reader.peek() == UInt8(ascii: ","))
                    }
                    let expected = String(repeating: "a", count: before) + special.text + String(repeating: "b", count: after)
                    #expect(read.0 == expected, "\(before) + \(special.json) + \(after)")
                    #expect(read.1, "stopped right after the closing quote")
                }
            }
        }
    }

    @Test func theReaderRefusesAControlCharacterOrAnUnendedString() {
        for before in 0..<17 {
            let a = Array(String(repeating: "a", count: before).utf8)
            for bytes in [[0x22] + a + [0x0A] + Array("b\"".utf8), [0x22] + a] {
                let read = bytes.withUnsafeBytes { raw -> String? in
                    var reader = JSONReader(bytes: raw)
                    return reader.string()
                }
                #expect(read == nil, "\(bytes)")
            }
        }
    }

    /// The word check itself, byte by byte against the plain definition, for every byte value at every place.
    @Test func aWordIsFlaggedFromItsFirstByteThatNeedsALook() {
        for value in 0...255 {
            for place in 0..<8 {
                var bytes = [UInt8](repeating: UInt8(ascii: "x"), count: 8)
                bytes[place] = UInt8(value)
                for asciiOnly in [false, true] {
                    let length = bytes.withUnsafeBytes { PlainRun.length(in: $0, from: 0, asciiOnly: asciiOnly) }
                    let needsALook = value == 0x22 || value == 0x5C || value < 0x20 || (asciiOnly && value >= 0x80)
                    #expect(length == (needsALook ? place : 8), "byte \(value) at \(place), asciiOnly \(asciiOnly)")
                }
            }
        }
    }
}
