import AsyncHTTPClient
import FakeUpstream
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Starts a fake upstream on an ephemeral loopback port with an HTTP client, runs `body`, stops both.
func withFake(_ yaml: String = "", _ body: (FakeUpstreamServer, HTTPClient) async throws -> Void) async throws {
    let server = try await FakeUpstreamServer.start(script: try FakeScript.parse(yaml), threads: 1)
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        try await body(server, client)
    } catch {
        try? await client.shutdown()
        try? await server.shutdown()
        throw error
    }
    try await client.shutdown()
    try await server.shutdown()
}

struct Reply {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:] }

    /// The `data:` payloads of an SSE body.
    var events: [String] {
        body.components(separatedBy: "\n\n").compactMap { block in
            block.split(separator: "\n").first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        }
    }

    /// The streamed answer text.
    var streamedContent: String {
        events.compactMap { e -> String? in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(e.utf8)) as? [String: Any],
                let choices = obj["choices"] as? [[String: Any]], let delta = choices.first?["delta"] as? [String: Any]
            else { return nil }
            return delta["content"] as? String
        }.joined()
    }
}

func chatBody(model: String = "llama-3.1-8b-instant", prompt: String = "hello", stream: Bool = false, maxTokens: Int? = nil, prefill: String? = nil) -> String {
    var messages = [#"{"role":"user","content":"\#(prompt)"}"#]
    if let prefill { messages.append(#"{"role":"assistant","content":"\#(prefill)"}"#) }
    var fields = [#""model":"\#(model)""#, #""messages":[\#(messages.joined(separator: ","))]"#, #""stream":\#(stream)"#]
    if let maxTokens { fields.append(#""max_tokens":\#(maxTokens)"#) }
    return "{" + fields.joined(separator: ",") + "}"
}

func post(_ client: HTTPClient, _ server: FakeUpstreamServer, path: String = "/v1/chat/completions", key: String = "sk-fake-1", body: String) async throws -> Reply {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)\(path)")
    request.method = .POST
    if !key.isEmpty { request.headers.add(name: "authorization", value: "Bearer \(key)") }
    request.headers.add(name: "content-type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await client.execute(request, timeout: .seconds(10))
    let bytes = try await response.body.collect(upTo: 10 << 20)
    return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: String(buffer: bytes))
}

func get(_ client: HTTPClient, _ server: FakeUpstreamServer, _ path: String, key: String = "sk-fake-1") async throws -> Reply {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)\(path)")
    request.headers.add(name: "authorization", value: "Bearer \(key)")
    let response = try await client.execute(request, timeout: .seconds(10))
    let bytes = try await response.body.collect(upTo: 10 << 20)
    return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: String(buffer: bytes))
}

/// A plain TCP exchange, to see faults at the socket level: what bytes came and how the connection ended. Its
/// blocking reads wait up to `timeout` on a thread of their own (`onThread`): on the cooperative pool, two of them
/// at once held both of this machine's threads for seconds and every test beside them timed out.
enum RawExchange {
    enum End: Equatable { case closed, reset, timedOut }

    struct Result {
        var bytes: String
        var end: End
        /// Milliseconds from sending until each read returned data.
        var arrivals: [(ms: Double, text: String)]
    }

    static func run(port: Int, body: String, key: String = "sk-fake-1", timeout: Double) async throws -> Result {
        try await onThread { exchange(port: port, body: body, key: key, timeout: timeout) }
    }

    private static func exchange(port: Int, body: String, key: String, timeout: Double) -> Result {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        let start = Date()
        var received: [UInt8] = []
        var arrivals: [(Double, String)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let remaining = timeout - Date().timeIntervalSince(start)
            if remaining <= 0 { return Result(bytes: String(decoding: received, as: UTF8.self), end: .timedOut, arrivals: arrivals) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(remaining * 1000))
            if ready == 0 { return Result(bytes: String(decoding: received, as: UTF8.self), end: .timedOut, arrivals: arrivals) }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return Result(bytes: String(decoding: received, as: UTF8.self), end: .closed, arrivals: arrivals) }
            if n < 0 {
                return Result(bytes: String(decoding: received, as: UTF8.self), end: errno == ECONNRESET ? .reset : .closed, arrivals: arrivals)
            }
            received += buffer[0..<n]
            arrivals.append((Date().timeIntervalSince(start) * 1000, String(decoding: buffer[0..<n], as: UTF8.self)))
        }
    }
}
