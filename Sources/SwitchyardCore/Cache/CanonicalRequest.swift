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
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 32)
        guard reader.canonicalObject(depth: 0, into: &out, ignoring: ignored, defaults: defaults) else { return nil }
        return out
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
            JSONText.appendQuoted(text, to: &out)
            return true
        case UInt8(ascii: "{"):
            return canonicalObject(depth: depth, into: &out, ignoring: [], defaults: [:])
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

    /// Writes the object at the cursor with its members sorted by name, leaving out `ignoring` and adding
    /// `defaults` (name: JSON) the object lacks. Each member's canonical value goes into one scratch buffer,
    /// not a buffer of its own, and only the names and ranges are sorted.
    mutating func canonicalObject(depth: Int, into out: inout [UInt8], ignoring: Set<String>, defaults: [String: String]) -> Bool {
        var values: [UInt8] = []
        var members: [(name: String, range: Range<Int>)] = []
        let ok = object(depth: depth) { r, key in
            if ignoring.contains(key) { return r.skipValue(depth: depth + 1) }
            let start = values.count
            guard r.canonicalValue(depth: depth + 1, into: &values) else { return false }
            members.append((key, start..<values.count))
            return true
        }
        guard ok else { return false }
        for (name, json) in defaults where !ignoring.contains(name) && !members.contains(where: { $0.name == name }) {
            let start = values.count
            let valid = Array(json.utf8).withUnsafeBytes { raw in
                var r = JSONReader(bytes: raw)
                r.skipSpace()
                return r.canonicalValue(depth: depth + 1, into: &values)
            }
            if valid { members.append((name, start..<values.count)) } else { values.removeSubrange(start...) }
        }
        members.sort { $0.name < $1.name }
        out.append(UInt8(ascii: "{"))
        for (i, member) in members.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.appendQuoted(member.name, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: values[member.range])
        }
        out.append(UInt8(ascii: "}"))
        return true
    }
}
