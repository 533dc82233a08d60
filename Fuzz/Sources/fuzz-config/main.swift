import FuzzDriver
import SwitchyardCore

/// The config loader on arbitrary text: a table or a list of problems, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let loader = ConfigLoader(environment: ["K1": "sk-or-v1-fuzzfuzzfuzzfuzz0001", "K2": "gsk_fuzzfuzzfuzz0002"])
    do {
        let table = try loader.parse(yaml: text, file: "fuzz.yaml", directory: nil)
        _ = table.routes.count
    } catch {
        _ = error.description
    }
    return 0
}

runFuzzer { data, size in fuzz(data, size) }
