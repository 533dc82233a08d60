import Synchronization

/// Counts requests in flight so the gateway can refuse new ones at once when full.
final class InFlightLimit: Sendable {
    private let count = Atomic<Int>(0)

    /// One request's place, released when the last reference goes: for a plain answer when the handler
    /// returns, for a stream when its writer (which holds it) ends.
    final class Slot: Sendable {
        private let owner: InFlightLimit
        private let released = Atomic<Bool>(false)

        fileprivate init(owner: InFlightLimit) {
            self.owner = owner
        }

        func release() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            owner.count.subtract(1, ordering: .relaxed)
        }

        deinit { release() }
    }

    var current: Int { count.load(ordering: .relaxed) }

    func acquire(limit: Int) -> Slot? {
        let now = count.add(1, ordering: .relaxed).newValue
        guard now <= limit else {
            count.subtract(1, ordering: .relaxed)
            return nil
        }
        return Slot(owner: self)
    }
}
