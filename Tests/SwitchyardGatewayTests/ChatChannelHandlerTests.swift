import Foundation
import SwitchyardCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Chat requests answered in the channel pipeline (`ChatChannelHandler`) must look and count exactly like
/// answers of the full path, and must never reorder, drop or wrongly keep open a connection's answers. (A
/// client that goes away: `ClientDisconnectTests`.)
struct ChatChannelHandlerTests {
    static func request(_ body: String, extraHeaders: String = "") -> String {
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extraHeaders)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static func header(_ answer: String, _ name: String) -> String? {
        answer.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name + ":") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
    }

    @Test func pipelinedAnswersKeepTheirOrder() async throws {
        // The miss takes 300 ms upstream; the hit behind it on the same connection must wait its turn.
        try await withHarness(script: "default: { latency: 300ms }") { h in
            #expect(try await h.post(chat("cached before")).status == 200)
            let fd = try RawConnection.open(port: h.port)
            defer { close(fd) }
            let all = Self.request(chat("slow miss")) + Self.request(chat("cached before")) + "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
                + Self.request(chat("second slow miss")) + Self.request(chat("cached before"))
            _ = all.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            let answers = try await RawConnection.answers(fd, count: 5)
            #expect(answers.count == 5)
            #expect(answers.map { Self.header($0, "x-switchyard-cache") } == ["miss", "hit", nil, "miss", "hit"])
            #expect(answers[0].contains(expectedAnswer("slow miss")))
            #expect(answers[1].contains(expectedAnswer("cached before")))
            #expect(answers[2].contains(#""object":"list""#))
            #expect(answers[3].contains(expectedAnswer("second slow miss")))
            // Once the pipeline drained, a hit is served from the shortcut again on the same connection.
            let later = try await RawConnection.exchange(fd, Self.request(chat("cached before")))
            #expect(Self.header(later, "x-switchyard-cache") == "hit")
        }
    }

    @Test func hitsCarryTheFullPathsHeadersAndCounts() async throws {
        try await withHarness { h in
            let miss = try await h.post(chat("same headers"))
            let fd = try RawConnection.open(port: h.port)
            defer { close(fd) }
            for _ in 0..<3 {
                let hit = try await RawConnection.exchange(fd, Self.request(chat("same headers")))
                #expect(hit.hasPrefix("HTTP/1.1 200 OK"))
                #expect(Self.header(hit, "x-switchyard-cache") == "hit")
                #expect(Self.header(hit, "x-switchyard-attempts") == "0")
                #expect(Self.header(hit, "x-switchyard-model") == miss.header("x-switchyard-model"))
                #expect(Self.header(hit, "x-switchyard-route") == "auto")
                #expect(Self.header(hit, "content-type") == "application/json")
                #expect(Self.header(hit, "server") == "switchyard")
                #expect(Self.header(hit, "date")?.hasSuffix(" GMT") == true)
                #expect(hit.hasSuffix(miss.body))
            }
            #expect(!RawConnection.isClosed(fd), "kept alive across hits")
            let stats = try await h.get("/admin/stats")
            let totals = try #require((try JSONSerialization.jsonObject(with: Data(stats.body.utf8)) as? [String: Any])?["totals"] as? [String: Any])
            #expect(totals["cache_hits"] as? Int == 3)
            #expect(totals["requests"] as? Int == 4)
        }
    }

    @Test func connectionCloseIsHonouredOnAHit() async throws {
        try await withHarness { h in
            #expect(try await h.post(chat("then close")).status == 200)
            let fd = try RawConnection.open(port: h.port)
            defer { close(fd) }
            let hit = try await RawConnection.exchange(fd, Self.request(chat("then close"), extraHeaders: "Connection: close\r\n"))
            #expect(Self.header(hit, "x-switchyard-cache") == "hit")
            var closed = false
            for _ in 0..<200 where !closed {
                closed = RawConnection.isClosed(fd)
                if !closed { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(closed, "the gateway closes after answering a request that asked it to")
        }
    }

    @Test func aBodyOverTheLimitIsStillRefused() async throws {
        try await withHarness(edit: { $0.server.maxBodyBytes = 2_000 }) { h in
            let fd = try RawConnection.open(port: h.port)
            defer { close(fd) }
            let big = chat(String(repeating: "too long ", count: 400))
            let answer = try await RawConnection.exchange(fd, Self.request(big))
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(200))")
            #expect(answer.contains(#""code":"request_too_large""#))
        }
    }
}
