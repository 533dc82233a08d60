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

    /// The request line written straight into the handler's line is the line the `Logger` writes from its text,
    /// with the handler's metadata, and nothing below the handler's level.
    @Test func aLineWrittenDirectlyIsTheLineTheLoggerWrites() throws {
        let line = RequestLogLine(
            route: "auto", model: "fast-8k", key: "openrouter#2", attempts: 3, cache: "miss", status: 502, stream: true, micros: 12_345,
            continuations: 1, error: "upstream \"said\" no")
        let text = capture { fd in
            var handler = LineLogHandler(label: "switchyard", descriptor: fd, metadataProvider: nil)
            handler.metadata = ["replica": "a"]
            var logger = Logger(label: "switchyard") { _ in handler }
            logger[metadataKey: "replica"] = "a"
            logger.info("\(line.text)", source: "SwitchyardGateway")
            #expect(handler.log(level: .info, source: "SwitchyardGateway", line.append))
            handler.logLevel = .warning
            #expect(handler.log(level: .info, source: "SwitchyardGateway", line.append), "handled, below the level")
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        let expected = #" info switchyard: replica=a \[SwitchyardGateway\] request route=auto model=fast-8k key=openrouter#2 attempts=3 cache=miss status=502 stream=true latency_ms=12.3 continuations=1 error="upstream "said" no""#
        #expect(lines.allSatisfy { $0.wholeMatch(of: try! Regex(Self.stamp + expected)) != nil }, "\(lines)")
        // With a metadata provider the handler declines, so the provider's metadata is not lost.
        let provided = LineLogHandler(label: "switchyard", descriptor: -1, metadataProvider: .init { ["trace": "1"] })
        #expect(!provided.log(level: .info, source: "SwitchyardGateway", line.append))
    }

    /// The request line's fields as the interpolated line had them: no continuations when none, the latency's
    /// tenths truncated, an error cut at 500 characters.
    @Test func theRequestLineKeepsItsFormat() {
        var line = RequestLogLine(
            route: "auto", model: "-", key: "-", attempts: 0, cache: "hit", status: 200, stream: false, micros: 987, continuations: 0, error: nil)
        #expect(line.text == "request route=auto model=- key=- attempts=0 cache=hit status=200 stream=false latency_ms=0.9")
        line.micros = 1_000_050
        line.error = String(repeating: "e", count: 600)
        #expect(line.text == "request route=auto model=- key=- attempts=0 cache=hit status=200 stream=false latency_ms=1000.0 error=\"" + String(repeating: "e", count: 500) + "\"")
        var digits: [UInt8] = []
        for value in [0, 7, 10, 99, 4_096, -12, Int.max] {
            RequestLogLine.decimal(value, &digits)
            digits.append(UInt8(ascii: " "))
        }
        #expect(String(decoding: digits, as: UTF8.self) == "0 7 10 99 4096 -12 \(Int.max) ")
    }
}
