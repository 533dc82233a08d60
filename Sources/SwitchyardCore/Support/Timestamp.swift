import Locking

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A wall-clock instant in nanoseconds since the Unix epoch.
///
/// Health expiries are wall-clock times: they are compared with provider reset headers
/// (epoch milliseconds, UTC midnight) and outlive a restart.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    public init(secondsSinceEpoch: Double) {
        self.nanosecondsSinceEpoch = Int64(secondsSinceEpoch * 1e9)
    }

    public init(millisecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = millisecondsSinceEpoch &* 1_000_000
    }

    public var secondsSinceEpoch: Double { Double(nanosecondsSinceEpoch) / 1e9 }
    public var millisecondsSinceEpoch: Int64 { nanosecondsSinceEpoch / 1_000_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }

    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: lhs.nanosecondsSinceEpoch &+ rhs.nanoseconds)
    }

    public static func - (lhs: Timestamp, rhs: Duration) -> Timestamp {
        Timestamp(nanosecondsSinceEpoch: lhs.nanosecondsSinceEpoch &- rhs.nanoseconds)
    }

    public static func - (lhs: Timestamp, rhs: Timestamp) -> Duration {
        .nanoseconds(lhs.nanosecondsSinceEpoch &- rhs.nanosecondsSinceEpoch)
    }

    /// The next midnight UTC strictly after this instant: when OpenRouter's daily caps reset.
    /// Before anything that happens: an expiry that has always passed.
    public static let distantPast = Timestamp(nanosecondsSinceEpoch: 0)

    public var nextUTCMidnight: Timestamp {
        let day: Int64 = 86_400 * 1_000_000_000
        let (q, r) = nanosecondsSinceEpoch.quotientAndRemainder(dividingBy: day)
        return Timestamp(nanosecondsSinceEpoch: (r >= 0 ? q + 1 : q) * day)
    }

    /// ISO 8601 in UTC with millisecond precision, for logs and JSON.
    public var description: String { ISO8601.format(self) }
}

extension Duration {
    /// Whole nanoseconds, saturating; enough for any configured duration.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return ns &+ attoseconds / 1_000_000_000
    }

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public var milliseconds: Double { Double(nanoseconds) / 1e6 }
}

/// Where decision logic reads the time, so tests can drive hours in microseconds.
public protocol WallClock: Sendable {
    func now() -> Timestamp
    /// Waits `duration` of this clock's time; throws when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

extension WallClock {
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// The real clock.
public struct SystemClock: WallClock {
    public init() {}

    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(nanosecondsSinceEpoch: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }
}

/// A clock that moves only when told: for tests.
public final class ManualClock: WallClock {
    private let current: Locked<Timestamp>

    public init(_ start: Timestamp = Timestamp(secondsSinceEpoch: 1_800_000_000)) {
        current = Locked(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    /// Waits the duration for real, then moves the clock by it: what waits on it sees the time it waited pass.
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
        advance(by: duration)
    }

    public func advance(by duration: Duration) {
        current.withLock { $0 = $0 + duration }
    }

    public func set(_ instant: Timestamp) {
        current.withLock { $0 = instant }
    }
}

enum ISO8601 {
    /// Civil-from-days (Howard Hinnant's algorithm): no Foundation formatter on the hot path.
    static func format(_ t: Timestamp) -> String {
        let ms = t.millisecondsSinceEpoch
        let (daysRaw, msOfDayRaw) = ms.quotientAndRemainder(dividingBy: 86_400_000)
        let days = msOfDayRaw < 0 ? daysRaw - 1 : daysRaw
        let msOfDay = msOfDayRaw < 0 ? msOfDayRaw + 86_400_000 : msOfDayRaw
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        if m <= 2 { y += 1 }
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        let h = msOfDay / 3_600_000
        let mi = (msOfDay / 60_000) % 60
        let s = (msOfDay / 1000) % 60
        let milli = msOfDay % 1000
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(milli, 3))Z"
    }
}
