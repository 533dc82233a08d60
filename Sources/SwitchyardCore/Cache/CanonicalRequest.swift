import Crypto
#if canImport(Glibc)
import Glibc
#endif

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
    private static let ignoredNames = ignored.map { Array($0.utf8) }

    /// The key for `body` in `scope` (a client identity, or "shared"); nil when the body is not a JSON object.
    public static func key(body: UnsafeRawBufferPointer, scope: String, defaults: [String: String]) -> CacheKey? {
        guard var canonical = canonical(body: body, defaults: defaults) else { return nil }
        canonical.append(0)
        canonical.append(contentsOf: scope.utf8)
        return CacheKey(digest: SHA256.hash(data: canonical).withUnsafeBytes { $0.loadUnaligned(as: SIMD32<UInt8>.self) })
    }

    /// The canonical bytes of a request object (exposed for tests).
    public static func canonical(body: UnsafeRawBufferPointer, defaults: [String: String]) -> [UInt8]? {
        var reader = JSONReader(bytes: body)
        reader.skipSpace()
        guard reader.peek() == UInt8(ascii: "{") else { return nil }
        var values: [UInt8] = []
        values.reserveCapacity(body.count + 32)
        var scratch = CanonicalScratch(capacity: body.count + 32)
        guard reader.canonicalObject(depth: 0, values: &values, scratch: &scratch, ignoring: ignoredNames, defaults: defaults) else { return nil }
        return scratch.form
    }
}

/// Room shared by every object of one request made canonical, so that an object allocates nothing of its own:
/// its members go on `members` (and are cut back after), its sorted form is put together in `form`.
struct CanonicalScratch {
    /// A member of an object being made canonical: its name, and where its canonical value lies in `values`.
    struct Member {
        var name: Name
        var value: Range<Int>
    }

    enum Name {
        /// ASCII without escapes, as it stands in the request: sorts by its bytes, is written as is.
        case plain(UnsafeRawBufferPointer)
        /// Any other name (escaped, non-ASCII, a route default), at this index of `texts`: sorts and is
        /// written as a `String`.
        case text(Int)
    }

    var members: [Member] = []
    var texts: [String] = []
    var form: [UInt8] = []

    init(capacity: Int) {
        members.reserveCapacity(16)
        form.reserveCapacity(capacity)
    }

    func string(_ name: Name) -> String {
        switch name {
        case .plain(let raw): String(decoding: raw, as: UTF8.self)
        case .text(let index): texts[index]
        }
    }

    /// Byte order, which is `String` order for ASCII names.
    static func plainOrder(_ a: Member, _ b: Member) -> Bool {
        guard case .plain(let x) = a.name, case .plain(let y) = b.name else { return false }
        let shared = min(x.count, y.count)
        if shared > 0, let p = x.baseAddress, let q = y.baseAddress {
            let order = memcmp(p, q, shared)
            if order != 0 { return order < 0 }
        }
        return x.count < y.count
    }
}

extension JSONReader {
    /// Writes the canonical form of the value at the cursor: sorted keys, no whitespace, strings re-escaped.
    mutating func canonicalValue(depth: Int, into out: inout [UInt8], scratch: inout CanonicalScratch) -> Bool {
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
            if CanonicalString.appendASCII(escaped: UnsafeRawBufferPointer(rebasing: bytes[(start + 1)..<(i - 1)]), to: &out) { return true }
            i = start
            guard let text = string() else { return false }
            JSONText.appendQuoted(text, to: &out)
            return true
        case UInt8(ascii: "{"):
            guard canonicalObject(depth: depth, values: &out, scratch: &scratch, ignoring: [], defaults: [:]) else { return false }
            out.append(contentsOf: scratch.form)
            return true
        case UInt8(ascii: "["):
            out.append(UInt8(ascii: "["))
            var first = true
            let ok = array(depth: depth) { reader in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                return reader.canonicalValue(depth: depth + 1, into: &out, scratch: &scratch)
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

    /// Puts the object at the cursor in `scratch.form` with its members sorted by name, leaving out `ignoring`
    /// and adding `defaults` (name: JSON) the object lacks. The members' canonical values are appended to
    /// `values` in the request's order while they are read, and cut from it again once the form holds them.
    mutating func canonicalObject(
        depth: Int, values out: inout [UInt8], scratch: inout CanonicalScratch, ignoring: [[UInt8]], defaults: [String: String]
    ) -> Bool {
        let base = out.count
        let first = scratch.members.count
        let firstText = scratch.texts.count
        defer {
            scratch.members.removeLast(scratch.members.count - first)
            scratch.texts.removeLast(scratch.texts.count - firstText)
        }
        let ok = fields(depth: depth) { r, key in
            if !ignoring.isEmpty, ignoring.contains(where: { key.matches($0) }) { return r.skipValue(depth: depth + 1) }
            let name: CanonicalScratch.Name
            if !key.escaped, !key.raw.contains(where: { $0 >= 0x80 }) {
                name = .plain(key.raw)
            } else {
                name = .text(scratch.texts.count)
                scratch.texts.append(key.string)
            }
            let start = out.count
            guard r.canonicalValue(depth: depth + 1, into: &out, scratch: &scratch) else { return false }
            scratch.members.append(.init(name: name, value: start..<out.count))
            return true
        }
        guard ok else { return false }
        for (name, json) in defaults where !ignoring.contains(where: { $0.elementsEqual(name.utf8) }) {
            guard !scratch.members[first...].contains(where: { scratch.string($0.name) == name }) else { continue }
            let start = out.count
            let valid = Array(json.utf8).withUnsafeBytes { raw in
                var r = JSONReader(bytes: raw)
                r.skipSpace()
                return r.canonicalValue(depth: depth + 1, into: &out, scratch: &scratch)
            }
            if valid {
                scratch.members.append(.init(name: .text(scratch.texts.count), value: start..<out.count))
                scratch.texts.append(name)
            } else {
                out.removeLast(out.count - start)
            }
        }
        scratch.form.removeAll(keepingCapacity: true)
        scratch.form.append(UInt8(ascii: "{"))
        if scratch.texts.count == firstText {
            scratch.members[first...].sort(by: CanonicalScratch.plainOrder)
            for n in first..<scratch.members.count {
                if n > first { scratch.form.append(UInt8(ascii: ",")) }
                guard case .plain(let raw) = scratch.members[n].name else { continue }
                scratch.form.append(UInt8(ascii: "\""))
                scratch.form.append(contentsOf: raw)
                scratch.form.append(UInt8(ascii: "\""))
                scratch.form.append(UInt8(ascii: ":"))
                out.withUnsafeBytes { scratch.form.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[scratch.members[n].value])) }
            }
        } else {
            var named = scratch.members[first...].map { (name: scratch.string($0.name), value: $0.value) }
            named.sort { $0.name < $1.name }
            for (n, member) in named.enumerated() {
                if n > 0 { scratch.form.append(UInt8(ascii: ",")) }
                JSONText.appendQuoted(member.name, to: &scratch.form)
                scratch.form.append(UInt8(ascii: ":"))
                out.withUnsafeBytes { scratch.form.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[member.value])) }
            }
        }
        scratch.form.append(UInt8(ascii: "}"))
        out.removeLast(out.count - base)
        return true
    }
}
