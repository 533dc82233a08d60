import Foundation
import Locking

/// One day's totals for one key and model.
public struct UsageRow: Sendable, Equatable {
    /// `2026-11-22`, UTC.
    public var day: String
    public var key: String
    public var model: String
    public var requests: Int
    public var failures: Int
    public var promptTokens: Int
    public var completionTokens: Int

    public init(day: String, key: String, model: String, requests: Int = 0, failures: Int = 0, promptTokens: Int = 0, completionTokens: Int = 0) {
        self.day = day
        self.key = key
        self.model = model
        self.requests = requests
        self.failures = failures
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// Counts upstream requests, failures and tokens per UTC day, key and model, for persistence and `/admin/usage`.
///
/// The request path only adds to a small dictionary under a short lock; the persister drains the
/// changes once a second. Totals since start are kept too, for a gateway that runs without a state file.
public final class UsageLedger: Sendable {
    struct Slot: Hashable {
        var day: Int32
        var key: String
        var model: String
    }

    struct Counts {
        var requests = 0
        var failures = 0
        var promptTokens = 0
        var completionTokens = 0

        mutating func add(_ other: Counts) {
            requests += other.requests
            failures += other.failures
            promptTokens += other.promptTokens
            completionTokens += other.completionTokens
        }
    }

    private struct Books {
        var pending: [Slot: Counts] = [:]
        var totals: [Slot: Counts] = [:]
    }

    private let books = Locked(Books())

    public init() {}

    /// Counts one attempt sent upstream; `failed` when it did not produce the answer.
    public func attempt(key: String, model: String, failed: Bool, at now: Timestamp) {
        add(Slot(day: Self.day(now), key: key, model: model), Counts(requests: 1, failures: failed ? 1 : 0))
    }

    /// Adds the tokens an answer's `usage` reported.
    public func tokens(key: String, model: String, prompt: Int, completion: Int, at now: Timestamp) {
        guard prompt > 0 || completion > 0 else { return }
        add(Slot(day: Self.day(now), key: key, model: model), Counts(promptTokens: prompt, completionTokens: completion))
    }

    private func add(_ slot: Slot, _ counts: Counts) {
        books.withLock { b in
            b.pending[slot, default: Counts()].add(counts)
            b.totals[slot, default: Counts()].add(counts)
        }
    }

    /// Takes the changes since the last drain, for one write.
    public func drain() -> [UsageRow] {
        let pending = books.withLock { b in
            let p = b.pending
            b.pending = [:]
            return p
        }
        return pending.map(Self.row)
    }

    /// Puts back changes a failed write could not keep, so they go out with the next one.
    public func restore(_ rows: [UsageRow]) {
        books.withLock { b in
            for row in rows {
                guard let day = Self.day(parsing: row.day) else { continue }
                b.pending[Slot(day: day, key: row.key, model: row.model), default: Counts()].add(
                    Counts(requests: row.requests, failures: row.failures, promptTokens: row.promptTokens, completionTokens: row.completionTokens))
            }
        }
    }

    /// Totals since this process started, for the last `days` UTC days up to `now`.
    public func totals(days: Int, at now: Timestamp) -> [UsageRow] {
        let first = Self.day(now) - Int32(max(days, 1)) + 1
        return books.withLock { b in b.totals.filter { $0.key.day >= first }.map(Self.row) }.sorted(by: UsageRow.order)
    }

    static func row(_ entry: (key: Slot, value: Counts)) -> UsageRow {
        UsageRow(
            day: dayText(entry.key.day), key: entry.key.key, model: entry.key.model, requests: entry.value.requests,
            failures: entry.value.failures, promptTokens: entry.value.promptTokens, completionTokens: entry.value.completionTokens)
    }

    // MARK: days

    /// Days since 1970-01-01, UTC.
    static func day(_ t: Timestamp) -> Int32 {
        let (q, r) = t.nanosecondsSinceEpoch.quotientAndRemainder(dividingBy: 86_400 * 1_000_000_000)
        return Int32(r < 0 ? q - 1 : q)
    }

    /// `YYYY-MM-DD` for a day number (civil-from-days, proleptic Gregorian).
    public static func dayText(_ day: Int32) -> String {
        let z = Int(day) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d))"
    }

    /// The UTC day text `days - 1` days before `now`'s, the first day a `days`-long report covers.
    public static func firstDay(of days: Int, at now: Timestamp) -> String {
        dayText(day(now) - Int32(max(days, 1)) + 1)
    }

    static func day(parsing text: String) -> Int32? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return Int32(HTTPDate.daysFromCivil(year: parts[0], month: parts[1], day: parts[2]))
    }
}

extension UsageRow {
    /// Newest day first, then key, then model.
    static func order(_ a: UsageRow, _ b: UsageRow) -> Bool {
        if a.day != b.day { return a.day > b.day }
        if a.key != b.key { return a.key < b.key }
        return a.model < b.model
    }

    /// The row as a JSON object for `/admin/usage`.
    public var json: String {
        #"{"day":"\#(day)","key":\#(JSONText.quoted(key)),"model":\#(JSONText.quoted(model)),"requests":\#(requests),"failures":\#(failures),"prompt_tokens":\#(promptTokens),"completion_tokens":\#(completionTokens)}"#
    }
}

/// The token counts of an answer's `usage` object, read without parsing the rest of the answer.
public enum UsageTokens {
    /// Looks for `"prompt_tokens":N` and `"completion_tokens":N` in the answer's tail, where `usage` sits. Searched
    /// from the end, where `usage` closes the answer, so both are found within its last hundred bytes or so (a
    /// search from the start went through every byte of the answer twice, 0.8% of a request's CPU).
    public static func scan(_ bytes: UnsafeRawBufferPointer) -> (prompt: Int, completion: Int) {
        let tail = UnsafeRawBufferPointer(rebasing: bytes[max(0, bytes.count - 1024)...])
        var prompt: Int?
        var completion: Int?
        var i = tail.count - 1
        while i >= 0, prompt == nil || completion == nil {
            if tail[i] == UInt8(ascii: "\"") {
                if prompt == nil, let value = number(after: "\"prompt_tokens\"", at: i, in: tail) {
                    prompt = value
                } else if completion == nil, let value = number(after: "\"completion_tokens\"", at: i, in: tail) {
                    completion = value
                }
            }
            i -= 1
        }
        return (prompt ?? 0, completion ?? 0)
    }

    public static func scan(_ text: String) -> (prompt: Int, completion: Int) {
        var text = text
        return text.withUTF8 { scan(UnsafeRawBufferPointer($0)) }
    }

    /// The whole number after `name` when `name` is at `i`, past spaces and the colon (0 when none follows);
    /// nil when `name` is not there.
    static func number(after name: StaticString, at i: Int, in bytes: UnsafeRawBufferPointer) -> Int? {
        let n = name.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, name.utf8Start, n) == 0 else { return nil }
        var j = i + n
        while j < bytes.count, bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: ":") { j += 1 }
        var value = 0
        while j < bytes.count, bytes[j] >= 48, bytes[j] <= 57, value < 1 << 40 {
            value = value * 10 + Int(bytes[j] - 48)
            j += 1
        }
        return value
    }
}
