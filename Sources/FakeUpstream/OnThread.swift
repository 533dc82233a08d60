import Foundation

/// Runs blocking work (a child process to its end, a load generator's loop) on a thread of its own.
///
/// Swift's cooperative pool has one thread per core: blocking one of them in a test stalls every gateway
/// and fake upstream of the tests running beside it, and their timeouts fire on work that never ran.
public func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
