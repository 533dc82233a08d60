import FakeUpstream
import Foundation
import NIOCore
import SwitchyardCore
import Testing

@testable import SwitchyardGateway

/// A client that reads a stream slowly holds the upstream's reads, through the gateway: nothing of the stream
/// queues in the gateway without bound.
@Suite struct StreamBackpressureTests {
    /// A client that stops reading a long stream (about 3.6 MB): the gateway's upstream connection has its reads
    /// held (a gateway reading ahead would take the whole stream at once; the client's small receive buffer and
    /// the gateway's send buffer, kept small by that window, hold a fraction of it); once the client reads again
    /// every event arrives, to [DONE].
    @Test func aClientNotReadingHoldsTheUpstreamsReads() async throws {
        try await withHarness(script: "default: { answer_tokens: 30000 }", edit: Self.generous) { h in
            let fd = try Self.sendUnread(h, prompt: "read me slowly")
            defer { close(fd) }
            let since = Date()
            while try await Self.held(h) == 0, Date().timeIntervalSince(since) < 20 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try await Self.held(h) == 1, "the gateway read the upstream's stream ahead of its client")

            let text = try await Self.readToEnd(fd)
            let events = text.components(separatedBy: "data: ").count - 1
            #expect(events > 30_000)
            #expect(text.contains("data: [DONE]\n\n") && text.hasSuffix("0\r\n\r\n"), "the stream did not end whole")
        }
    }

    /// Waiting for a slow client is not the upstream's silence: a client that reads nothing for longer than
    /// `stream_idle_timeout` gets the whole stream from its first attempt, with no continuation.
    @Test func aSlowClientIsNotTakenForAStalledUpstream() async throws {
        try await withHarness(script: "default: { answer_tokens: 30000 }", edit: Self.impatient) { h in
            let fd = try Self.sendUnread(h, prompt: "read me after a pause")
            defer { close(fd) }
            try await Self.readWholeAfterAPause(h, fd)
            #expect(h.fake.log().perAction["prefill"] == nil, "the slow client was taken for a stall and the stream continued elsewhere")
        }
    }

    /// The same on the relay that runs in a task, which carries a stream on after a cut: a client that reads nothing
    /// for longer than `stream_idle_timeout` while the continuation streams gets it whole, continued once (for the
    /// cut), not again for its own slowness.
    @Test func aSlowClientOfAContinuationIsNotTakenForAStalledUpstream() async throws {
        let script = #"default: { answer_tokens: 30000 }\#nmodels_behavior: { "\#(MessagesTests.fast)": { fault: cut, after_tokens: 5 } }"#
        let logs = LogCapture()
        try await withHarness(script: script, logs: logs, edit: Self.impatient) { h in
            let fd = try Self.sendUnread(h, prompt: "continue me after a pause")
            defer { close(fd) }
            try await Self.readWholeAfterAPause(h, fd)
            #expect(h.fake.log().perAction["prefill"] == 1, "the slow client was taken for a stall and the stream continued again: \(logs.text) \(h.fake.log().requests.map { "\($0.timeMs) \($0.model) \($0.action)" })")
        }
    }

    /// A stream idle for a second is taken for stalled (longer under a sanitizer, where a loaded machine's pauses
    /// pass a second): a client silent for 3.5 idle timeouts would be three stalls.
    static func impatient(_ table: inout RoutingTable) {
        generous(&table)
        table.retry.streamIdleTimeout = idleTimeout
    }

    static let idleTimeout = Duration.milliseconds(Int64(1000 * min(timingScale, 2)))

    /// Once the client's silence holds the gateway's upstream reads, reads nothing for three idle timeouts and more,
    /// then the rest: it must be the whole stream, with no error event.
    static func readWholeAfterAPause(_ h: Harness, _ fd: Int32) async throws {
        let since = Date()
        while try await held(h) == 0, Date().timeIntervalSince(since) < 20 { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: idleTimeout * 3.5)
        let text = try await readToEnd(fd)
        #expect(text.contains("data: [DONE]\n\n") && text.hasSuffix("0\r\n\r\n"), "the stream did not end whole")
        #expect(!text.contains(#""error""#))
    }

    /// The fake makes the whole answer before its head, slowly in a debug build under the full suite's load.
    static func generous(_ table: inout RoutingTable) {
        table.retry.firstTokenTimeout = .seconds(20)
        table.retry.requestDeadline = .seconds(60)
    }

    /// Sends a streaming chat request from a client with a small receive buffer that reads nothing yet.
    static func sendUnread(_ h: Harness, prompt: String) throws -> Int32 {
        let fd = try connect(port: h.port, receiveBuffer: 4096)
        let body = chat(prompt, stream: true)
        let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        return fd
    }

    /// The gateway's upstream connections to the fake whose reads are held.
    static func held(_ h: Harness) async throws -> Int {
        let origin = try #require(UpstreamTarget(url: h.fake.baseURL)?.origin)
        var held = 0
        for loop in h.upstream.group.makeIterator() {
            let pool = h.upstream.pool(for: loop)
            held += try await loop.submit { pool.heldCount(origin) }.get()
        }
        return held
    }

    static func connect(port: Int, receiveBuffer: Int32) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size = receiveBuffer
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            close(fd)
            throw GatewayProcessError(message: "connect: errno \(errno)")
        }
        return fd
    }

    /// Everything the gateway sends until its chunked answer ends (or 20 s pass, longer under a sanitizer),
    /// without blocking a thread.
    static func readToEnd(_ fd: Int32) async throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(20 * timingScale)
        while Date() < deadline, !received.ends(with: Array("0\r\n\r\n".utf8)) {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 {
                break
            } else {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        return String(decoding: received, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
