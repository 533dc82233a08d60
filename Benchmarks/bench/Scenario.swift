import FakeUpstream
import Foundation

#if canImport(Glibc)
import Glibc
#endif
import CCurlShim
import Histogram

/// One scenario's outcome: its figures (named as in design.md §7), its pass condition and whether it held.
struct ScenarioReport: @unchecked Sendable {
    var name: String
    var figures: [(name: String, value: Double)] = []
    var condition: String
    var passed = false
    /// The scenario could not run here (what it needs is missing, its notes say what); it neither passes nor
    /// fails, and does not fail bench's exit code.
    var skipped = false
    /// Printed under the table and kept in the JSON and HTML reports.
    var notes: [String] = []
    /// Figures for the JSON and HTML reports only (dotted names nest), too many for the table's line.
    var details: [(name: String, value: Double)] = []
    /// Per-second samples for the report's timeline: (second, requests, errors).
    var timeline: [(second: Int, requests: Int, errors: Int)] = []
    var events: [(second: Double, text: String)] = []
    var latencyHistogram: Histogram<UInt64>?
    /// What the histogram measures.
    var latencyLabel = "latency distribution"

    func figure(_ name: String) -> Double? { figures.first { $0.name == name }?.value }
    mutating func add(_ name: String, _ value: Double) { figures.append((name, value)) }

    /// PASS, FAIL or SKIP: what the table, the progress line and the HTML report show.
    var verdict: String { skipped ? "SKIP" : passed ? "PASS" : "FAIL" }
    /// Whether it ran and missed its condition: what makes bench exit non-zero.
    var failed: Bool { !skipped && !passed }

    /// A report of a scenario that could not run here, saying why.
    static func skipped(_ name: String, condition: String, because reason: String) -> ScenarioReport {
        var report = ScenarioReport(name: name, condition: condition)
        report.skipped = true
        report.notes = ["skipped: \(reason)"]
        return report
    }
}

struct BenchOptions {
    var duration: Double
    var concurrency: Int
    var rate: Double?
    /// The gauntlet with one request of each kind per fault and no sweeps between faults (the tests' run).
    var quick = false
    /// Only these faults of the gauntlet (`--gauntlet-faults`); nil runs them all.
    var gauntletFaults: [String]? = nil
    /// `--postgres`: the replicas scenario's store; nil starts a throwaway cluster (or skips without PostgreSQL).
    var postgres: String? = nil
}

/// A latency histogram in nanoseconds, reported in milliseconds.
struct Latencies {
    var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)

    mutating func record(_ ns: UInt64) { _ = histogram.record(max(ns, 1)) }
    func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1e6 }
    var count: UInt64 { histogram.totalCount }
}

/// Chat request bodies: prompts of a given size and the answers the fake upstream will give them.
enum Prompts {
    static func body(_ prompt: String, model: String = "auto", stream: Bool = false, maxTokens: Int? = nil) -> [UInt8] {
        var text = #"{"model":"\#(model)","messages":[{"role":"user","content":"\#(prompt)"}]"#
        if stream { text += #","stream":true"# }
        if let maxTokens { text += #","max_tokens":\#(maxTokens)"# }
        return Array((text + "}").utf8)
    }

    /// About `tokens` tokens as the fake upstream counts them (4 bytes a token).
    static func document(tokens: Int, seed: Int) -> String {
        let sentence = "Freight cars are sorted over the hump into classification tracks \(seed). "
        return String(repeating: sentence, count: max(1, tokens * 4 / sentence.utf8.count))
    }
}

/// Tracks per-second throughput and errors while a load runs.
struct Timeline {
    let start = Clock.now()
    var buckets: [Int: (Int, Int)] = [:]

    mutating func record(_ result: LoadResult) {
        let second = Int((result.completedAt - start) / 1_000_000_000)
        var bucket = buckets[second, default: (0, 0)]
        bucket.0 += 1
        if result.status != 200 || result.error != nil { bucket.1 += 1 }
        buckets[second] = bucket
    }

    /// Whole seconds only: the last, partial second would look like a collapse.
    var samples: [(second: Int, requests: Int, errors: Int)] {
        buckets.keys.sorted().dropLast().map { ($0, buckets[$0]!.0, buckets[$0]!.1) }
    }

    func seconds(at instant: UInt64) -> Double { Double(instant - start) / 1e9 }
}

/// The CPU time of the calling thread in microseconds: the load generator's own cost.
func threadCPUMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

func ms(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1000) }
