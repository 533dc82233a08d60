import Foundation

/// `shared:` in routes.yaml: several replicas keep one state in PostgreSQL instead of each its SQLite file.
public struct SharedSettings: Sendable, Equatable {
    /// The environment variable that holds the `postgres://user:password@host:port/db` URL.
    public var postgresURLEnv: String = "SWITCHYARD_POSTGRES_URL"
    /// This replica's name in stats and heartbeats; `hostname:port` when not given.
    public var replica: String?
    /// A request never waits on the store longer than this before it uses the local rule.
    public var timeout: Duration = .milliseconds(50)
    /// The URL read from `postgresURLEnv` (or the env file); nil when the variable is unset, and then nothing is shared.
    public var url: PostgresURL?

    public init() {}
}

/// A `postgres://` (or `postgresql://`) URL, parsed. Its password is never part of any text it prints.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// `sslmode=require` or `verify-full` (or `verify-ca`): the connection must use TLS.
    public var tls: Bool

    /// Why a URL could not be read; never quotes the URL, which holds a password.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static func parse(_ text: String) throws(Problem) -> PostgresURL {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased(),
            scheme == "postgres" || scheme == "postgresql"
        else { throw Problem(description: "expected postgres://user:password@host:port/database") }
        guard let host = components.host, !host.isEmpty else { throw Problem(description: "the URL names no host") }
        guard let user = components.user, !user.isEmpty else { throw Problem(description: "the URL names no user") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw Problem(description: "the URL names no database (…/DATABASE)") }
        var tls = false
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            switch item.value ?? "" {
            case "require", "verify-ca", "verify-full": tls = true
            case "disable", "allow", "prefer": tls = false
            default: throw Problem(description: "sslmode must be disable, prefer, require, verify-ca or verify-full")
            }
        }
        return PostgresURL(
            host: host, port: components.port ?? 5432, user: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 }, database: database, tls: tls)
    }

    /// `postgres://switchyard:•••@127.0.0.1:5432/switchyard`: for logs and stats.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":•••")@\(host):\(port)/\(database)\(tls ? "?sslmode=require" : "")"
    }
}
