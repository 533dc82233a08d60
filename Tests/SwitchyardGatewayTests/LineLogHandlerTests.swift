import Foundation
import Logging
import NIOCore
import NIOPosix
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

    /// On an event loop, the lines of one turn are held and written together once the turn's work is done:
    /// none has reached the file while the turn still runs, and afterwards all have, whole and in order.
    @Test func linesOfOneTurnOfAnEventLoopGoOutTogetherInOrder() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        defer { close(fds[0]) }
        let (reader, writer) = (fds[0], fds[1])
        _ = fcntl(reader, F_SETFL, O_NONBLOCK)
        let loop = group.next()
        let seenDuringTheTurn = try loop.submit {
            let logger = Logger(label: "switchyard") { LineLogHandler(label: $0, descriptor: writer, metadataProvider: nil) }
            for line in 0..<50 { logger.info("line \(line)", source: "Gateway") }
            var probe = [UInt8](repeating: 0, count: 16)
            return read(reader, &probe, probe.count)
        }.wait()
        try loop.submit {}.wait()
        close(writer)
        #expect(seenDuringTheTurn <= 0, "lines were written one by one during the turn")
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(reader, &chunk, chunk.count)
            if count <= 0 { break }
            out += chunk.prefix(count)
        }
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 50)
        let pattern = try Regex(Self.stamp + #" info switchyard: \[Gateway\] line (\d+)"#)
        let numbers = lines.compactMap { line in (try? pattern.wholeMatch(in: String(line)))?.output[1].substring.flatMap { Int($0) } }
        #expect(numbers == Array(0..<50))
    }
}
