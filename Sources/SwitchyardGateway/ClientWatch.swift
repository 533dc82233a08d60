import NIOCore
import SwitchyardCore

/// Runs upstream work that must end when the client's connection does.
///
/// Hummingbird does not cancel a handler whose client has gone, so requests it serves (those the channel
/// handler passes on, Anthropic's Messages, embeddings) would keep their upstream call running until it answered. The
/// connection is polled rather than awaited: an `EventLoopFuture`'s `get()` cannot be cancelled, so a task
/// waiting on `closeFuture` would hold the group open after the work ended. Followers waiting on an identical
/// request in flight (`SingleFlight`) watch their client the same way.
enum ClientWatch {
    static let interval: Duration = .milliseconds(100)

    /// `work`'s result; or, once `channel` is seen closed (within `interval`), `work` is cancelled and
    /// `CancellationError` thrown.
    static func run<T: Sendable>(while channel: any Channel, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await untilGone(channel)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw CancellationError() }
            return value
        }
    }

    /// Returns once `channel` is seen closed (within `interval`) or the monotonic `deadline` passes; with no
    /// channel, at the deadline. Throws when the waiting task is cancelled.
    static func untilGone(_ channel: (any Channel)?, orMono deadline: UInt64 = .max) async throws {
        while channel?.isActive ?? true {
            let now = Monotonic.now()
            if now >= deadline { return }
            try await Task.sleep(for: .nanoseconds(Int64(min(deadline - now, UInt64(interval.nanoseconds)))))
        }
    }
}
