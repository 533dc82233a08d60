import Foundation

/// Where bench runs its load generator (with the in-process fake upstream) and where the processes it measures
/// run: on a machine where it may use two CPUs or more, bench keeps the first for itself and gives the rest to
/// the gateway (and the other processes it starts), so its figures match a `wrk` run with the target pinned
/// alone, as the README's comparisons are made. Pinning uses util-linux's `taskset`; without it, or with one
/// CPU, nothing is pinned and the report says so.
enum CPUPinning {
    struct Plan: Equatable {
        var loadGenerator: [Int]
        var targets: [Int]
    }

    /// Set once by `pinBench`; nil when nothing is pinned.
    nonisolated(unsafe) private(set) static var plan: Plan?
    static let taskset = ["/usr/bin/taskset", "/bin/taskset"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The CPUs of `Cpus_allowed_list` (`0-3,6`), in order.
    static func parse(list: String) -> [Int] {
        list.split(separator: ",").flatMap { part -> [Int] in
            let bounds = part.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2, bounds[0] <= bounds[1] { return Array(bounds[0]...bounds[1]) }
            return bounds.count == 1 ? [bounds[0]] : []
        }
    }

    /// The split for `allowed` CPUs: the first for bench, the rest for what it measures; nil under two.
    static func split(_ allowed: [Int]) -> Plan? {
        guard allowed.count >= 2, let first = allowed.first else { return nil }
        return Plan(loadGenerator: [first], targets: Array(allowed.dropFirst()))
    }

    static var allowed: [Int] {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return [] }
        return parse(list: String(line.dropFirst("Cpus_allowed_list:".count)))
    }

    /// Pins every thread of bench to its CPU and remembers the plan; says what it did.
    static func pinBench() {
        guard let taskset, let chosen = split(allowed) else {
            warn("note: not pinned (needs taskset and at least two CPUs); figures vary with what shares the CPUs")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: taskset)
        process.arguments = ["-a", "-p", "-c", list(chosen.loadGenerator), String(getpid())]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return }
        plan = chosen
        warn("pinned: load generator and fake upstream on CPU \(list(chosen.loadGenerator)), measured processes on CPU \(list(chosen.targets))")
    }

    /// `executable` with `arguments`, run on the targets' CPUs when bench pinned itself.
    static func command(_ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        guard let plan, let taskset else { return (executable, arguments) }
        return (taskset, ["-c", list(plan.targets), executable] + arguments)
    }

    static func list(_ cpus: [Int]) -> String { cpus.map(String.init).joined(separator: ",") }
}
