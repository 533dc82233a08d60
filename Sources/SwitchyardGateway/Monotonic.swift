#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds, for deadlines and timeouts that must not jump with the wall clock.
enum Monotonic {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
