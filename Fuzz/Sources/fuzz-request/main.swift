import FuzzDriver
import SwitchyardCore

/// The request path's parsers on arbitrary bytes: the routing scan, the cache key (and its canonical form's
/// stability), and an answer's reader.
/// Any crash, hang or sanitizer report is a bug; a thrown scan error is the expected answer to bad input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let summary = try? ChatRequestScan.scan(bytes) {
        _ = summary.has(field: "model")
        _ = CanonicalRequest.key(body: bytes, scope: "fuzz", defaults: ["temperature": "0.3"])
    }
    // Any object has a canonical form, and that form is its own: sorting, re-escaping and defaults settle at once.
    if let canonical = CanonicalRequest.canonical(body: bytes, defaults: ["temperature": "0.3", "é": "[{\"b\":1,\"a\":2}]"]) {
        let again = canonical.withUnsafeBytes { CanonicalRequest.canonical(body: $0, defaults: ["temperature": "0.3"]) }
        precondition(again == canonical, "a canonical form that is not its own canonical form")
    }
    _ = CachedAnswer.fromCompletion(body: Array(bytes), modelName: "m", keyLabel: "k#1")
    _ = UsageTokens.scan(bytes)
    return 0
}

runFuzzer { data, size in fuzz(data, size) }
