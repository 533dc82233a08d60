/// Keeps key material out of anything the gateway writes or serves.
public enum Redaction {
    /// Replaces each known secret, and anything shaped like a provider key, by its masked form.
    public static func redact(_ text: String, secrets: [String] = []) -> String {
        var out = text
        for secret in secrets where secret.count >= 8 && out.contains(secret) {
            out = out.replacing(secret, with: Secret(secret).masked)
        }
        return maskKeyShapes(out)
    }

    static let prefixes = ["sk-or-v1-", "sk-ant-", "sk-proj-", "sk-", "gsk_", "AIza", "xai-"]

    /// Masks runs like `sk-…` or `gsk_…` of 16+ key characters that no secret list named.
    static func maskKeyShapes(_ text: String) -> String {
        guard prefixes.contains(where: { text.contains($0) }) else { return text }
        var result = ""
        var rest = Substring(text)
        var atWordStart = true
        while let next = rest.first {
            var matched = false
            for prefix in prefixes where atWordStart && rest.hasPrefix(prefix) {
                let run = rest.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
                if run.count >= 16 + prefix.count / 2 {
                    result += Secret(String(run)).masked
                    rest = rest.dropFirst(run.count)
                    matched = true
                }
                break
            }
            if !matched {
                result.append(next)
                rest = rest.dropFirst()
                atWordStart = !(next.isLetter || next.isNumber || next == "-" || next == "_")
            }
        }
        return result
    }
}
