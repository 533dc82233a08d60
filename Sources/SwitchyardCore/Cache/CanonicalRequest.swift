import Crypto

/// The identity of a request for caching: a SHA-256 over its canonical form.
///
/// Canonical means key order and insignificant whitespace do not matter and strings compare by their decoded
/// text; fields that do not change the answer (`stream`, `stream_options`, `user`) are left out, and the route's
/// defaults are folded in for fields the client omitted, so a default changed in routes.yaml changes the key.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    public let digest: SIMD32<UInt8>

    public init(digest: SIMD32<UInt8>) {
        self.digest = digest
    }

    /// A SHA-256 digest is uniform already: eight of its bytes hash as well as all 32, in one call into
    /// `Hasher` instead of one per byte (which showed in profiles of the cache's dictionary).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(unsafeBitCast(digest, to: SIMD4<UInt64>.self)[0])
    }

    public var description: String {
        (0..<8).map { String(digest[$0], radix: 16).count == 1 ? "0" + String(digest[$0], radix: 16) : String(digest[$0], radix: 16) }.joined()
    }
}

public enum CanonicalRequest {
    /// Fields that never change the answer.
    public static let ignored: Set<String> = ["stream", "stream_options", "user"]

    /// The key for `body` in `scope` (a client identity, or "shared"); nil when the body is not a JSON object.
    public static func key(body: UnsafeRawBufferPointer, scope: String, defaults: [String: String]) -> CacheKey? {
        guard var canonical = canonical(body: body, defaults: defaults) else { return nil }
        canonical.append(0)
        canonical.append(contentsOf: scope.utf8)
        let digest = SHA256.hash(data: canonical)
        var bytes = SIMD32<UInt8>()
        for (i, b) in digest.enumerated() { bytes[i] = b }
        return CacheKey(digest: bytes)
    }

    /// The canonical bytes of a request object (exposed for tests).
    public static func canonical(body: UnsafeRawBufferPointer, defaults: [String: String]) -> [UInt8]? {
        var reader = JSONReader(bytes: body)
        reader.skipSpace()
        guard reader.peek() == UInt8(ascii: "{") else { return nil }
        var members: [(String, [UInt8])] = []
        let ok = reader.object(depth: 0) { r, key in
            if ignored.contains(key) { return r.skipValue(depth: 1) }
            var out: [UInt8] = []
            guard r.canonicalValue(depth: 1, into: &out) else { return false }
            members.append((key, out))
            return true
        }
        guard ok else { return nil }
        for (name, json) in defaults where !ignored.contains(name) && !members.contains(where: { $0.0 == name }) {
            let bytes = Array(json.utf8)
            let value: [UInt8]? = bytes.withUnsafeBytes { raw in
                var r = JSONReader(bytes: raw)
                var out: [UInt8] = []
                r.skipSpace()
                return r.canonicalValue(depth: 1, into: &out) ? out : nil
            }
            if let value { members.append((name, value)) }
        }
        var out: [UInt8] = []
        writeObject(members, into: &out)
        return out
    }

    /// `{"a":…,"b":…}` with members sorted by name.
    static func writeObject(_ members: [(String, [UInt8])], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (i, (name, value)) in members.sorted(by: { $0.0 < $1.0 }).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: JSONText.quoted(name).utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value)
        }
        out.append(UInt8(ascii: "}"))
    }
}

extension JSONReader {
    /// Writes the canonical form of the value at the cursor: sorted keys, no whitespace, strings re-escaped.
    mutating func canonicalValue(depth: Int, into out: inout [UInt8]) -> Bool {
        guard depth <= Self.maxDepth, let c = peek() else { return false }
        switch c {
        case UInt8(ascii: "\""):
            // Without escapes a JSON string is already in canonical form: copy its bytes.
            let start = i
            guard let (_, escaped) = skipString() else { return false }
            if !escaped {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
                return true
            }
            i = start
            guard let text = string() else { return false }
            out.append(contentsOf: JSONText.quoted(text).utf8)
            return true
        case UInt8(ascii: "{"):
            var members: [(String, [UInt8])] = []
            let ok = object(depth: depth) { r, key in
                var value: [UInt8] = []
                guard r.canonicalValue(depth: depth + 1, into: &value) else { return false }
                members.append((key, value))
                return true
            }
            guard ok else { return false }
            CanonicalRequest.writeObject(members, into: &out)
            return true
        case UInt8(ascii: "["):
            out.append(UInt8(ascii: "["))
            var first = true
            let ok = array(depth: depth) { reader in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                return reader.canonicalValue(depth: depth + 1, into: &out)
            }
            out.append(UInt8(ascii: "]"))
            return ok
        default:
            let start = i
            guard skipValue(depth: depth) else { return false }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            return true
        }
    }
}
