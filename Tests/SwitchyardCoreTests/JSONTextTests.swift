import Foundation
import Testing
@testable import SwitchyardCore

/// JSON string literals written by hand (translated requests, answers, replays) are valid JSON that decodes to the
/// text, with the escapes as before: a special byte is escaped wherever it falls among the runs copied whole.
struct JSONTextTests {
    /// The literal a scalar at a time, as the gateway wrote it before runs were copied whole.
    static func reference(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static let specials = ["", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "é", "漢", "😀", "\u{2028}", "/"]

    @Test func everySpecialIsEscapedWhereverItFalls() throws {
        for before in 0..<17 {
            for after in [0, 1, 7, 8, 9, 23] {
                for special in Self.specials {
                    let text = String(repeating: "a", count: before) + special + String(repeating: "b", count: after)
                    let quoted = JSONText.quoted(text)
                    #expect(quoted == Self.reference(text), "\(before) + \(special.debugDescription) + \(after)")
                    var appended = Array("x".utf8)
                    JSONText.appendQuoted(text, to: &appended)
                    #expect(appended == Array(("x" + quoted).utf8))
                    let decoded = try JSONSerialization.jsonObject(with: Data(("[" + quoted + "]").utf8)) as? [String]
                    #expect(decoded == [text], "\(quoted) decodes to the text")
                }
            }
        }
    }

    @Test func everyControlCharacterHasItsEscape() {
        for value in 0..<0x20 {
            let text = String(UnicodeScalar(UInt8(value)))
            #expect(JSONText.quoted(text) == Self.reference(text), "U+\(value)")
        }
        #expect(JSONText.quoted("a\u{1b}[0m\nb") == #""a\u001b[0m\nb""#)
    }
}
