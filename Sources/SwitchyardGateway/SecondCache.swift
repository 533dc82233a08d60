import Locking

#if canImport(Glibc)
import Glibc
#endif

/// A text that changes once a second (a log stamp, a `Date` header), made once per second for every thread.
final class SecondCache: Sendable {
    private let cached = Locked((second: Int.min, text: ""))
    private let format: @Sendable (Int) -> String

    init(format: @escaping @Sendable (Int) -> String) {
        self.format = format
    }

    func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = spec.tv_sec
        if let text = cached.withLock({ $0.second == second ? $0.text : nil }) { return text }
        let text = format(second)
        cached.withLock { $0 = (second, text) }
        return text
    }

    /// The local time as `2026-11-23T00:58:34+0000`, as swift-log's StreamLogHandler prints it.
    static let logStamp = SecondCache { second in
        var time = time_t(second)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The `Date` header value, `Mon, 23 Nov 2026 01:04:30 GMT` (RFC 9110's IMF-fixdate; English names
    /// whatever the locale).
    static let httpDate = SecondCache { second in
        var time = time_t(second)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
