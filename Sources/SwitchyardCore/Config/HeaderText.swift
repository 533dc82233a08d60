/// What HTTP allows in a header, checked when the table is loaded. Every header the gateway sends upstream is
/// fixed or built from the table (a key, a provider's `headers`, the base URL's host), so a line break in a key's
/// variable is a config error naming the key, not a failure of every request that key would have served; and the
/// upstream client does not check each request's headers again as it writes them.
public enum HeaderText {
    /// RFC 9110's token, a header's name: letters, digits and ``!#$%&'*+-.^_`|~``.
    public static func isName(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
                default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
                }
            }
    }

    /// A header's value: no control character but a tab (above all no CR or LF, which would end the header).
    public static func isValue(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 == UInt8(ascii: "\t") || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
