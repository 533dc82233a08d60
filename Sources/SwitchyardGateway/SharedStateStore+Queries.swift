import Logging
import NIOCore
import PostgresNIO

/// Every statement the store sends goes through `PostgresConnection.run`, never postgres-nio's own `query` or
/// `withTransaction`. postgres-nio 1.33 writes a query to the channel with no write promise (`PostgresConnection.query`,
/// `PostgresClient.query`); once the channel has closed, NIO has taken the handlers out of its pipeline and drops the
/// write, so the query's promise is never completed and its caller stays suspended for ever, holding the store, its
/// client and its logger. The server going away between two statements of a transaction is enough, or the pool
/// leasing a connection whose close it has not yet heard of. `run` looks at the channel and writes the query in one
/// turn of its event loop: a channel still open there has the handler that answers or fails every query, and a closed
/// one fails the call at once.
extension PostgresConnection {
    /// Runs `query` and collects its rows, or fails at once if the connection has closed.
    @discardableResult
    func run(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await eventLoop.flatSubmit {
            guard !self.isClosed else { return self.eventLoop.makeFailedFuture(SharedStoreConnectionClosed()) }
            return self.query(query, logger: logger)
        }.get()
    }
}

extension SharedStateStore {
    /// One statement on a pooled connection.
    @discardableResult
    func run(_ query: PostgresQuery) async throws -> PostgresQueryResult {
        let logger = self.logger
        return try await client.withConnection { try await $0.run(query, logger: logger) }
    }

    /// `body` between BEGIN and COMMIT on one pooled connection, rolled back if it throws or was cancelled: `bounded`
    /// has then told the caller it failed, and the persister sends the same usage again with its next write.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await client.withConnection { c in
            try await c.run("BEGIN", logger: logger)
            let value: T
            do {
                value = try await body(c)
                try Task.checkCancellation()
            } catch {
                _ = try? await c.run("ROLLBACK", logger: logger)
                throw error
            }
            try await c.run("COMMIT", logger: logger)
            return value
        }
    }
}

extension PostgresQueryResult {
    /// Every row decoded as `columns`.
    func decode<each Column: PostgresDecodable>(_ columns: (repeat each Column).Type) throws -> [(repeat each Column)] {
        try rows.map { try $0.decode(columns) }
    }

    /// Every row's one column.
    func decode<Column: PostgresDecodable>(_ column: Column.Type) throws -> [Column] {
        try rows.map { try $0.decode(column) }
    }
}

/// A statement was not sent: its pooled connection had already closed.
struct SharedStoreConnectionClosed: Error, CustomStringConvertible {
    var description: String { "the connection to the shared store has closed" }
}
