import Foundation
import Logging
import Testing
@testable import SwitchyardGateway

#if canImport(Glibc)
import Glibc
#endif

struct LineLogHandlerTests {
    /// Logs through a pipe and returns what came out.
    func capture(_ body: (Int32) -> Void) -> String {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        body(fds[1])
        close(fds[1])
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fds[0], &chunk, chunk.count)
            if count <= 0 { break }
            out += chunk.prefix(count)
        }
        close(fds[0])
        return String(decoding: out, as: UTF8.self)
    }

    /// `2026-11-23T00:58:34+0000`: what swift-log's StreamLogHandler prints, so log readers see one format.
    static let stamp = #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"#

    @Test func linesKeepStreamLogHandlersFormat() throws {
        let text = capture { fd in
            var logger = Logger(label: "switchyard") { LineLogHandler(label: $0, descriptor: fd, metadataProvider: nil) }
            logger.info("plain", source: "Gateway")
            logger[metadataKey: "z"] = "last"
            logger[metadataKey: "a"] = "first"
            logger.warning("with metadata", metadata: ["m": "call"], source: "Gateway")
            logger.debug("below the level", source: "Gateway")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3)
        #expect(lines[0].wholeMatch(of: try Regex(Self.stamp + #" info switchyard: \[Gateway\] plain"#)) != nil)
        #expect(lines[1].wholeMatch(of: try Regex(Self.stamp + #" warning switchyard: a=first m=call z=last \[Gateway\] with metadata"#)) != nil)
        #expect(lines[2].isEmpty)
    }

    @Test func concurrentLinesArriveWhole() throws {
        let text = capture { fd in
            let logger = Logger(label: "switchyard") { LineLogHandler(label: $0, descriptor: fd, metadataProvider: nil) }
            DispatchQueue.concurrentPerform(iterations: 8) { thread in
                for line in 0..<25 { logger.info("thread \(thread) line \(line) \(String(repeating: "x", count: 40))", source: "Gateway") }
            }
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 200)
        let pattern = try Regex(Self.stamp + #" info switchyard: \[Gateway\] thread \d line \d+ x{40}"#)
        #expect(lines.allSatisfy { $0.wholeMatch(of: pattern) != nil })
    }
}
