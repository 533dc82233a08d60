import NIOCore
import Locking
import Synchronization
import SwitchyardCore

/// Identical cacheable requests in flight share one upstream call: the first leads, the others wait for
/// its answer, each with its own deadline and disconnect handling. A leader whose answer cannot be stored
/// (a failure, a `length` cut) releases the followers to try on their own.
final class SingleFlight: Sendable {
    private let flights = Locked<[CacheKey: Flight]>([:])

    enum Role {
        case leader(FlightTicket)
        case follower(Flight)
    }

    func join(_ key: CacheKey) -> Role {
        flights.withLock { flights in
            if let flight = flights[key] { return .follower(flight) }
            let flight = Flight()
            flights[key] = flight
            return .leader(FlightTicket(key: key, flight: flight, owner: self))
        }
    }

    fileprivate func land(_ key: CacheKey, _ flight: Flight, with answer: CachedAnswer?) {
        flights.withLock { flights in
            if flights[key] === flight { flights[key] = nil }
        }
        flight.complete(answer)
    }

    var inFlight: Int { flights.withLock { $0.count } }
}

/// The leader's obligation to land its flight; landing happens once, and at the latest when the ticket dies,
/// so followers are never left waiting on a leader that vanished.
final class FlightTicket: Sendable {
    let key: CacheKey
    let flight: Flight
    private let owner: SingleFlight
    private let landed = Atomic<Bool>(false)

    fileprivate init(key: CacheKey, flight: Flight, owner: SingleFlight) {
        self.key = key
        self.flight = flight
        self.owner = owner
    }

    func land(_ answer: CachedAnswer?) {
        guard !landed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        owner.land(key, flight, with: answer)
    }

    deinit {
        land(nil)
    }
}

final class Flight: Sendable {
    private struct State {
        var done = false
        var answer: CachedAnswer?
        var waiters: [Int: CheckedContinuation<CachedAnswer?, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Locked(State())

    func complete(_ answer: CachedAnswer?) {
        let waiters = state.withLock { s -> [CheckedContinuation<CachedAnswer?, Never>] in
            s.done = true
            s.answer = answer
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: answer) }
    }

    /// The leader's answer; nil when it had none to share, the deadline passed or the client left.
    func wait(untilMono deadline: UInt64, channel: (any Channel)?) async -> CachedAnswer? {
        await withTaskGroup(of: CachedAnswer?.self) { group in
            group.addTask { await self.answer() }
            group.addTask {
                try? await ClientWatch.untilGone(channel, orMono: deadline)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func answer() async -> CachedAnswer? {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<CachedAnswer?, Never>) in
                let immediate = state.withLock { s -> (Bool, CachedAnswer?) in
                    if s.done { return (true, s.answer) }
                    if Task.isCancelled { return (true, nil) }
                    s.waiters[id] = continuation
                    return (false, nil)
                }
                if immediate.0 { continuation.resume(returning: immediate.1) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
