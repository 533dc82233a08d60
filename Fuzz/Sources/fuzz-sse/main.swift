import FuzzDriver
import SwitchyardCore

/// The stream path on arbitrary upstream bytes, fed in two uneven pieces as a socket would deliver them:
/// SSE framing, then each event's chunk scan and JSON check, as the relay does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let split = size == 0 ? 0 : Int(bytes[0]) % (size + 1)
    var decoder = SSEDecoder()
    let onEvent: ([UInt8]) -> Void = { event in
        _ = StreamChunkScan.isDone(event)
        if let chunk = StreamChunkScan.scan(event) { _ = chunk.usageJSON }
        _ = StreamChunkScan.isValidJSON(event)
    }
    bytes.withUnsafeBytes { raw in
        decoder.feed(UnsafeRawBufferPointer(rebasing: raw[..<split]), emit: onEvent)
        decoder.feed(UnsafeRawBufferPointer(rebasing: raw[split...]), emit: onEvent)
    }
    return 0
}

runFuzzer { data, size in fuzz(data, size) }
