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

    /// A pipe whose reading end does not block, for watching what has been written so far.
    struct Pipe {
        let reader: Int32
        let writer: Int32

        init() {
            var fds: [Int32] = [0, 0]
            _ = pipe(&fds)
            (reader, writer) = (fds[0], fds[1])
            _ = fcntl(reader, F_SETFL, O_NONBLOCK)
        }

        /// The lines written so far.
        func lines() -> [Substring] {
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(reader, &chunk, chunk.count)
                if count <= 0 { break }
                out += chunk.prefix(count)
            }
            return String(decoding: out, as: UTF8.self).split(separator: "\n")
        }

        func close() {
            Glibc.close(reader)
            Glibc.close(writer)
        }
    }

    /// The numbers of `request N` lines, in the order they came.
    static func requestNumbers(_ lines: [Substring]) throws -> [Int] {
        let pattern = try Regex(Self.stamp + #" info switchyard: \[Gateway\] request (\d+)"#)
        return lines.compactMap { line in (try? pattern.wholeMatch(in: String(line)))?.output[1].substring.flatMap { Int($0) } }
    }

    /// On an event loop, request lines are held to share a `write`: nothing reaches the file while they are held;
    /// any other line goes out at once behind them, in order; what is still held goes out with `flushHeldLines`.
    @Test func requestLinesOnAnEventLoopAreHeldAndGoOutInOrder() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let pipe = Pipe()
        defer { pipe.close() }
        let handler = LineLogHandler(label: "switchyard", descriptor: pipe.writer, metadataProvider: nil, requestLineDelay: .hours(1))
        let logger = Logger(label: "switchyard") { _ in handler }
        let loop = group.next()
        @Sendable func requestLines(_ numbers: Range<Int>) {
            for n in numbers { _ = handler.log(level: .info, source: "Gateway") { $0.append(contentsOf: "request \(n)".utf8) } }
        }
        try loop.submit { requestLines(0..<50) }.wait()
        try loop.submit {}.wait()
        #expect(pipe.lines().isEmpty, "request lines were written before anything asked")
        try loop.submit { logger.warning("a key was disabled", source: "Gateway") }.wait()
        let first = pipe.lines()
        #expect(first.count == 51)
        #expect(try Self.requestNumbers(first) == Array(0..<50))
        #expect(first.last?.hasSuffix(" warning switchyard: [Gateway] a key was disabled") == true, "\(first.last ?? "")")
        try loop.submit { requestLines(50..<60) }.wait()
        #expect(pipe.lines().isEmpty)
        LineLogHandler.flushHeldLines()
        let last = pipe.lines()
        #expect(try Self.requestNumbers(last) == Array(50..<60), "\(last)")
    }

    /// Held request lines go out by themselves once their delay is up.
    @Test func heldRequestLinesGoOutAfterTheirDelay() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pipe = Pipe()
        let handler = LineLogHandler(label: "switchyard", descriptor: pipe.writer, metadataProvider: nil, requestLineDelay: .milliseconds(20))
        try await group.next().submit {
            for n in 0..<5 { _ = handler.log(level: .info, source: "Gateway") { $0.append(contentsOf: "request \(n)".utf8) } }
        }.get()
        var lines: [Substring] = []
        let bound = ContinuousClock.now + .seconds(5)
        while lines.count < 5, ContinuousClock.now < bound {
            try await Task.sleep(for: .milliseconds(5))
            lines += pipe.lines()
        }
        try await group.shutdownGracefully()
        pipe.close()
        #expect(try Self.requestNumbers(lines) == Array(0..<5))
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
