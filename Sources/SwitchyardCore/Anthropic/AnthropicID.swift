import Crypto

/// Anthropic-style ids derived from the upstream's, so one answer keeps one id however often it is translated
/// (a cached answer replayed, a stream and its stored copy).
enum AnthropicID {
    /// `msg_` and the upstream id (`chatcmpl-…`, `gen-…`), or a digest of `fallback` when the upstream gave none.
    static func message(upstream: String?, fallback: some Sequence<UInt8>) -> String {
        let kept = safe(upstream ?? "")
        return "msg_" + (kept.isEmpty ? digest(fallback) : kept)
    }

    /// A tool call's id as a `tool_use` id: the upstream's own (`call_…`) when it is one Anthropic accepts
    /// (letters, digits, `_`, `-`), cleaned when not, made from the message id and the call's index when
    /// missing. The client sends it back in `tool_result.tool_use_id`, and the request translation passes it
    /// to the upstream as `tool_call_id` unchanged, so the pair still matches there.
    static func toolUse(upstream: String?, messageID: String, index: Int) -> String {
        let kept = safe(upstream ?? "")
        return kept.isEmpty ? "toolu_\(messageID.dropFirst(4))_\(index)" : kept
    }

    private static func safe(_ id: String) -> String {
        var out = ""
        for scalar in id.unicodeScalars.prefix(96) {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-": out.unicodeScalars.append(scalar)
            default: out += "_"
            }
        }
        return out
    }

    private static func digest(_ bytes: some Sequence<UInt8>) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in SHA256.hash(data: Array(bytes)).prefix(12) {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
