import Testing
@testable import SwitchyardCore

struct ValueParsingTests {
    @Test(arguments: [
        ("300ms", 300_000_000 as Int64), ("30s", 30_000_000_000), ("5m", 300_000_000_000), ("1h", 3_600_000_000_000),
        ("0s", 0), ("1.5s", 1_500_000_000), ("2m59.56s", 179_560_000_000), ("9m38.016s", 578_016_000_000), ("12ms", 12_000_000),
        ("1h2m3s", 3_723_000_000_000),
    ])
    func durations(text: String, nanoseconds: Int64) {
        #expect(ValueParsing.duration(text)?.nanoseconds == nanoseconds)
    }

    @Test(arguments: ["", "5", "5 seconds", "m5", "5x", "-", "1.2.3s"])
    func badDurations(text: String) {
        #expect(ValueParsing.duration(text) == nil)
    }

    @Test func sizes() {
        #expect(ValueParsing.byteSize("64MB") == 64 * 1024 * 1024)
        #expect(ValueParsing.byteSize("512KB") == 512 * 1024)
        #expect(ValueParsing.byteSize("1GB") == 1024 * 1024 * 1024)
        #expect(ValueParsing.byteSize("100") == 100)
        #expect(ValueParsing.byteSize("4 parsecs") == nil)
    }

    @Test func fractions() {
        #expect(ValueParsing.fraction("5%") == 0.05)
        #expect(ValueParsing.fraction("0.5") == 0.5)
        #expect(ValueParsing.fraction("half") == nil)
    }

    @Test func durationsPrintAsWritten() {
        #expect(Duration.seconds(300).configText == "5m")
        #expect(Duration.milliseconds(300).configText == "300ms")
        #expect(Duration.seconds(3600).configText == "1h")
    }

    @Test func prefixesMatchInAnyASCIICase() {
        #expect("Application/JSON; charset=utf-8".hasPrefixIgnoringASCIICase("application/json"))
        #expect("bearer sk".hasPrefixIgnoringASCIICase("bearer "))
        #expect("X-RateLimit-Remaining".hasPrefixIgnoringASCIICase("x-ratelimit-"))
        #expect("x-ratelimit-".hasPrefixIgnoringASCIICase("x-ratelimit-"))
        #expect(!"x-ratelimit".hasPrefixIgnoringASCIICase("x-ratelimit-"))
        #expect(!"text/plain".hasPrefixIgnoringASCIICase("application/json"))
        #expect(!"Bearer".hasPrefixIgnoringASCIICase("bearer "))
        #expect("".hasPrefixIgnoringASCIICase(""))
        #expect("Content-Type".equalsIgnoringASCIICase("content-type"))
        #expect(!"Content-Types".equalsIgnoringASCIICase("content-type"))
        #expect(!"Content-Typ".equalsIgnoringASCIICase("content-type"))
    }

    @Test func utcMidnight() {
        // 2027-01-15T10:00:00Z → 2027-01-16T00:00:00Z
        let t = Timestamp(secondsSinceEpoch: 1_800_007_200)
        #expect(t.description == "2027-01-15T10:00:00.000Z")
        #expect(t.nextUTCMidnight.description == "2027-01-16T00:00:00.000Z")
    }

    @Test func secretsPrintMasked() {
        let secret = Secret("sk-or-v1-0123456789abcdef0123456789a1b2")
        #expect(secret.masked == "sk-or-…a1b2")
        #expect("\(secret)" == "sk-or-…a1b2")
        #expect(!String(reflecting: secret).contains("0123456789"))
    }

    @Test func redaction() {
        let key = "sk-or-v1-0123456789abcdef0123456789a1b2"
        let message = "Incorrect API key provided: \(key). Also gsk_ABCDEFGHIJKLMNOPQRSTUVWXYZ123456 leaked; task-force-is-a-word-here."
        let redacted = Redaction.redact(message, secrets: [key])
        #expect(!redacted.contains(key))
        #expect(!redacted.contains("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        #expect(redacted.contains("sk-or-…a1b2"))
        #expect(redacted.contains("task-force-is-a-word-here"))
    }
}
