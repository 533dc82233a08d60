import FakeUpstream
import Foundation

/// How scenarios script the fake upstream: directly when it runs in this process, over its `/_control`
/// API when it is another process (a gateway under test started by hand points at it).
protocol UpstreamControl: Sendable {
    /// `http://HOST:PORT/v1`
    var baseURL: String { get }
    func updateBehavior(_ yaml: String) throws
    func reset() throws
    func log() throws -> FakeLog
}

struct InProcessUpstream: UpstreamControl {
    let server: FakeUpstreamServer

    var baseURL: String { server.baseURL }
    func updateBehavior(_ yaml: String) throws { try server.updateBehavior(yaml) }
    func reset() throws { server.reset() }
    func log() throws -> FakeLog { server.log() }
}

struct RemoteUpstream: UpstreamControl {
    /// `http://HOST:PORT`
    let root: String

    var baseURL: String { root + "/v1" }

    func updateBehavior(_ yaml: String) throws {
        let (status, body) = try HTTP.post(root + "/_control/behavior", yaml)
        guard status == 200 else { throw BenchError("\(root)/_control/behavior: \(status) \(body)") }
    }

    func reset() throws {
        _ = try HTTP.post(root + "/_control/reset", "")
    }

    func log() throws -> FakeLog {
        let (status, body) = try HTTP.get(root + "/_control/log")
        guard status == 200 else { throw BenchError("\(root)/_control/log: \(status)") }
        return try JSONDecoder().decode(FakeLog.self, from: Data(body.utf8))
    }
}
