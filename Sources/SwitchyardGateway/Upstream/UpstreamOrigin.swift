/// Where a pooled connection goes: scheme, host and port. Connections are pooled per origin.
struct UpstreamOrigin: Hashable, Sendable, CustomStringConvertible {
    var tls: Bool
    var host: String
    var port: Int

    /// The `Host` header: the port only when it is not the scheme's own.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (tls ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Whether `host` is an IP address, which TLS must not send as a server name (SNI).
    var hostIsAddress: Bool {
        host.contains(":") || (!host.isEmpty && host.allSatisfy { $0.isNumber || $0 == "." })
    }

    var description: String { "\(tls ? "https" : "http")://\(hostHeader)" }
}

/// A URL split into what the pool needs (the origin) and what the request line needs (the path).
struct UpstreamTarget: Hashable, Sendable {
    var origin: UpstreamOrigin
    /// The path and query, never empty (`/` at least); a base URL's has no trailing slash.
    var path: String

    /// Parses `http(s)://host[:port][/path]`; nil for anything else (other schemes, user info, no host).
    init?(url: String) {
        let tls: Bool
        let rest: Substring
        if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = tls ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty else { return nil }
        var path = String(rest.dropFirst(authority.count))
        if path.hasPrefix("?") { path = "/" + path }
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        self.origin = UpstreamOrigin(tls: tls, host: String(host), port: port)
        self.path = path.isEmpty ? "/" : path
    }

    init(origin: UpstreamOrigin, path: String) {
        self.origin = origin
        self.path = path
    }

    /// This base URL with `suffix` (`/chat/completions`) after its path.
    func appending(_ suffix: String) -> UpstreamTarget {
        UpstreamTarget(origin: origin, path: path == "/" ? suffix : path + suffix)
    }
}

/// Why an upstream exchange ended without a complete answer. Never carries a key or a URL's user info.
enum UpstreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No connection within `connect_timeout`.
    case connectTimeout
    /// The connection could not be made (refused, unreachable, DNS, TLS handshake).
    case connectFailed(String)
    /// No response head within the attempt's budget.
    case headTimeout
    /// Silent for longer than the read timeout between two parts of the body.
    case readTimeout
    /// The connection ended (closed, reset, I/O error) before the response did.
    case connectionLost(String)
    /// The response head or body broke HTTP/1.1.
    case malformed(String)
    /// The body was longer than the caller accepts.
    case tooLarge(Int)
    /// The caller gave up (the client left, the deadline passed).
    case cancelled
    /// The base URL is not one this client can reach.
    case badURL(String)

    var description: String {
        switch self {
        case .connectTimeout: "connect timed out"
        case .connectFailed(let why): "cannot connect (\(why))"
        case .headTimeout: "no response within the attempt's time"
        case .readTimeout: "read timed out"
        case .connectionLost(let why): "connection lost (\(why))"
        case .malformed(let why): "malformed response (\(why))"
        case .tooLarge(let limit): "response body over \(limit) bytes"
        case .cancelled: "cancelled"
        case .badURL(let url): "not an http(s) URL: \(url)"
        }
    }

    /// A timeout of any kind (for the classifier's wording and the stream's first-token rule).
    var isTimeout: Bool {
        switch self {
        case .connectTimeout, .headTimeout, .readTimeout: true
        default: false
        }
    }
}
