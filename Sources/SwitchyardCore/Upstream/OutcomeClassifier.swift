import Foundation

/// Reads an upstream answer (status, headers, body) and says what it means for routing.
///
/// Every shape of providers.md is understood: `code` as string or integer, array bodies,
/// OpenRouter's `metadata.error_type` and `metadata.headers`, Gemini's `status`/`quotaId`,
/// Groq's 413 TPM, context length by code or by message, and 200 bodies that carry an error.
/// Nothing downstream re-parses status codes.
public struct OutcomeClassifier: Sendable {
    public var provider: ProviderKind

    public init(provider: ProviderKind) {
        self.provider = provider
    }

    /// Classifies a complete answer read in place: a success whose body mentions no error, the common case, is
    /// classified without copying the body.
    public func classify(
        status: Int, headers: @autoclosure () -> [(name: String, value: String)], body: UnsafeRawBufferPointer, now: Timestamp,
        secrets: [String] = []
    ) -> Outcome {
        if (200..<300).contains(status), !Self.contains(body, "\"error\"") { return Outcome(.success, status: status) }
        return classify(status: status, headers: headers(), body: Array(body), now: now, secrets: secrets)
    }

    /// Classifies a complete answer. `secrets` are redacted from any message kept.
    public func classify(
        status: Int, headers: [(name: String, value: String)], body: [UInt8], now: Timestamp, secrets: [String] = []
    ) -> Outcome {
        if (200..<300).contains(status) {
            // Fast path: only a body that mentions an error is parsed at all.
            guard Self.contains(body, "\"error\"") else { return Outcome(.success, status: status) }
            let info = ErrorInfo(body: body)
            guard info.isErrorInSuccess else { return Outcome(.success, status: status) }
            let message = Redaction.redact(info.message ?? "the upstream reported an error in a 200 answer", secrets: secrets)
            if info.indicatesContextLength { return Outcome(.contextTooLong, message: message, status: status) }
            return Outcome(.transient, message: message, status: status)
        }
        let info = ErrorInfo(body: body)
        let message = Redaction.redact(info.message ?? Self.reasonPhrase(status), secrets: secrets)
        let hint = Self.retryHint(headers: headers, info: info, now: now)
        func outcome(_ kind: OutcomeClass, _ retry: RetryHint? = nil) -> Outcome {
            Outcome(kind, retry: retry, message: message, status: status)
        }

        if info.indicatesContextLength, [400, 413, 422, 502].contains(status) || info.code == "context_length_exceeded" {
            return outcome(.contextTooLong)
        }
        switch status {
        case 401:
            return outcome(.keyInvalid)
        case 402:
            return outcome(.keyExhausted, hint)
        case 403:
            if info.indicatesModeration { return outcome(.contentRefused) }
            return outcome(.keyInvalid)
        case 400:
            if info.indicatesInvalidKey { return outcome(.keyInvalid) }
            if info.indicatesContentPolicy { return outcome(.contentRefused) }
            return outcome(.requestInvalid)
        case 404:
            return outcome(.modelGone)
        case 408, 409:
            return outcome(.transient, hint)
        case 413:
            if info.code == "rate_limit_exceeded" || info.lowerMessage.contains("tokens per minute") {
                return outcome(.requestTooLargeForModel)
            }
            return outcome(.requestInvalid)
        case 429:
            if info.indicatesInsufficientQuota { return outcome(.keyExhausted, hint) }
            if info.indicatesDailyLimit {
                let reset = hint ?? (provider == .openrouter ? .at(now.nextUTCMidnight) : nil)
                return outcome(.accountExhausted, reset)
            }
            return Outcome(.rateLimited, retry: hint, message: message, status: status, scope: rateLimitScope(info))
        case 500..<600:
            return outcome(.transient, hint)
        case 400..<500:
            return outcome(.requestInvalid)
        default:
            return outcome(.transient, hint)
        }
    }

    /// Who a per-minute 429 holds back, from the provider's kind and the answer's words (providers.md).
    /// Ambiguous answers start narrow, at one model on one key; `HealthState` widens on evidence.
    func rateLimitScope(_ info: ErrorInfo) -> RateLimitScope {
        let m = info.lowerMessage
        if m.contains("rate-limited upstream") || m.contains("rate limited upstream") { return .model }
        if m.contains("free-models-per-min") { return .account }
        switch provider {
        case .groq, .openai: return .accountModel
        default:
            // Groq's and OpenAI's words name the model and the organisation wherever they come from.
            if m.contains("for model"), m.contains("organization") { return .accountModel }
            return .keyModel
        }
    }

    /// Classifies an in-stream error event (a chunk with a top-level `error`, or `finish_reason: "error"`).
    public func classifyStreamError(event: [UInt8], secrets: [String] = []) -> Outcome {
        let info = ErrorInfo(body: event)
        let message = Redaction.redact(info.message ?? "the upstream stream reported an error", secrets: secrets)
        if info.indicatesContextLength { return Outcome(.contextTooLong, message: message, status: nil) }
        return Outcome(.transient, message: message, status: nil)
    }

    // MARK: retry hints

    /// The earliest instant the upstream said to come back, from every place providers put it.
    static func retryHint(headers: [(name: String, value: String)], info: ErrorInfo, now: Timestamp) -> RetryHint? {
        func header(_ name: String) -> String? {
            if let h = headers.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) { return h.value }
            return info.metadataHeaders.first(where: { $0.key.caseInsensitiveCompare(name) == .orderedSame })?.value
        }
        if let ms = header("retry-after-ms").flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), ms >= 0 {
            return .after(.milliseconds(Int64(ms)))
        }
        if let text = header("retry-after")?.trimmingCharacters(in: .whitespaces) {
            if let seconds = Double(text), seconds >= 0 { return .after(.milliseconds(Int64(seconds * 1000))) }
            if let date = HTTPDate.parse(text) { return .at(date) }
        }
        if let wait = info.tryAgainIn { return .after(wait) }
        if let text = header("x-ratelimit-reset"), let value = Double(text.trimmingCharacters(in: .whitespaces)) {
            if value > 1e12 { return .at(Timestamp(millisecondsSinceEpoch: Int64(value))) }
            if value > 1e9 { return .at(Timestamp(secondsSinceEpoch: value)) }
            return .after(.milliseconds(Int64(value * 1000)))
        }
        for kind in ["requests", "tokens"] {
            if header("x-ratelimit-remaining-\(kind)")?.trimmingCharacters(in: .whitespaces) == "0",
                let reset = header("x-ratelimit-reset-\(kind)").flatMap({ ValueParsing.duration($0) })
            {
                return .after(reset)
            }
        }
        return nil
    }

    static func contains(_ haystack: [UInt8], _ needle: StaticString) -> Bool {
        haystack.withUnsafeBytes { contains($0, needle) }
    }

    static func contains(_ h: UnsafeRawBufferPointer, _ needle: StaticString) -> Bool {
        let n = needle.utf8CodeUnitCount
        guard h.count >= n else { return false }
        let first = needle.utf8Start.pointee
        var i = 0
        while i <= h.count - n {
            if h[i] == first, memcmp(h.baseAddress! + i, needle.utf8Start, n) == 0 { return true }
            i += 1
        }
        return false
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: "bad request"
        case 401: "unauthorized"
        case 402: "payment required"
        case 403: "forbidden"
        case 404: "not found"
        case 408: "request timeout"
        case 413: "payload too large"
        case 429: "too many requests"
        case 500: "internal server error"
        case 502: "bad gateway"
        case 503: "service unavailable"
        case 504: "gateway timeout"
        case 529: "overloaded"
        default: "HTTP \(status)"
        }
    }
}

/// The fields of an error body, whichever of the known shapes it came in.
struct ErrorInfo {
    var message: String?
    var code: String?
    var type: String?
    var status: String?
    var errorType: String?
    var metadataHeaders: [String: String] = [:]
    var raw: String = ""
    var isErrorInSuccess = false

    var lowerMessage: String { (message ?? "").lowercased() }

    init(body: [UInt8]) {
        raw = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        guard let json = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { message = String(trimmed.prefix(500)) }
            return
        }
        var object = json
        if let array = json as? [Any], let first = array.first { object = first }  // Gemini: [{"error":{…}}]
        guard let dict = object as? [String: Any] else { return }
        if let error = dict["error"] as? [String: Any] {
            read(error)
            isErrorInSuccess = true
        } else if let error = dict["error"] as? String {
            message = error
            isErrorInSuccess = true
        } else if let text = dict["message"] as? String {
            message = text
            code = Self.text(dict["code"])
            type = dict["type"] as? String
        }
        if let choices = dict["choices"] as? [[String: Any]] {
            for choice in choices {
                if let error = choice["error"] as? [String: Any] {
                    read(error)
                    isErrorInSuccess = true
                } else if choice["finish_reason"] as? String == "error" {
                    isErrorInSuccess = true
                }
            }
        }
    }

    private mutating func read(_ error: [String: Any]) {
        message = (error["message"] as? String) ?? message
        code = Self.text(error["code"]) ?? code
        type = (error["type"] as? String) ?? type
        status = (error["status"] as? String) ?? status
        if let metadata = error["metadata"] as? [String: Any] {
            errorType = metadata["error_type"] as? String
            if let headers = metadata["headers"] as? [String: Any] {
                for (k, v) in headers { metadataHeaders[k] = Self.text(v) }
            }
            if let raw = metadata["raw"] as? String, message == nil { message = raw }
            if let reasons = metadata["reasons"] as? [String], !reasons.isEmpty {
                message = (message ?? "refused") + " (" + reasons.joined(separator: ", ") + ")"
            }
        }
    }

    static func text(_ value: Any?) -> String? {
        switch value {
        case let s as String: s
        case let n as NSNumber: n.stringValue
        default: nil
        }
    }

    var indicatesContextLength: Bool {
        if code == "context_length_exceeded" || errorType == "context_length_exceeded" { return true }
        let m = lowerMessage
        return m.contains("maximum context length") || m.contains("reduce the length") || m.contains("prompt is too long")
            || m.contains("context_length_exceeded") || m.contains("context length exceeded")
    }

    var indicatesModeration: Bool {
        errorType == "permission_denied" || lowerMessage.contains("moderation") || lowerMessage.contains("flagged")
    }

    var indicatesInvalidKey: Bool {
        code == "invalid_api_key" || raw.contains("API_KEY_INVALID") || lowerMessage.contains("api key not valid")
            || lowerMessage.contains("invalid api key")
    }

    var indicatesContentPolicy: Bool {
        errorType == "content_policy_violation" || code == "content_policy_violation" || code == "content_filter"
            || lowerMessage.contains("content policy") || lowerMessage.contains("content management policy")
    }

    var indicatesInsufficientQuota: Bool {
        code == "insufficient_quota" || type == "insufficient_quota"
    }

    var indicatesDailyLimit: Bool {
        let m = lowerMessage
        return m.contains("per-day") || m.contains("per day") || m.contains("(rpd)") || m.contains("daily")
            || raw.contains("PerDay")
    }

    /// "Please try again in 6.78s" / "9m38.016s" / "644ms".
    var tryAgainIn: Duration? {
        guard let message, let range = message.range(of: "try again in ", options: .caseInsensitive) else { return nil }
        let rest = message[range.upperBound...]
        var token = rest.prefix { $0.isNumber || $0.isLetter || $0 == "." }
        while token.last == "." { token = token.dropLast() }  // the sentence's full stop
        return ValueParsing.duration(token)
    }
}

/// RFC 7231 IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), the only form Retry-After dates use in practice.
enum HTTPDate {
    static func parse(_ text: String) -> Timestamp? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let year = Int(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let time = parts[4].split(separator: ":").compactMap { Int($0) }
        guard time.count == 3 else { return nil }
        let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
        let seconds = Int64(days) * 86_400 + Int64(time[0] * 3600 + time[1] * 60 + time[2])
        return Timestamp(nanosecondsSinceEpoch: seconds * 1_000_000_000)
    }

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
