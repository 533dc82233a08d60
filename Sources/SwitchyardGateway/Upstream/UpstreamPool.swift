import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Keep-alive connections to upstream origins, for one event loop: a request served on a loop is sent on a
/// connection of the same loop, so no lock and no thread hop sit between the client and the upstream.
///
/// Idle connections are reused newest first (the oldest idle out) and closed after `idleTimeout`, by one sweep
/// timer per pool rather than one timer per release; at most `maxPerOrigin` are open per origin, and requests
/// beyond wait for one to come back. Only ever used on `loop`.
final class UpstreamPool: @unchecked Sendable {
    struct Limits: Sendable {
        var maxPerOrigin = 256
        var idleTimeout: TimeAmount = .seconds(60)
        var connectTimeout: TimeAmount = .seconds(5)
    }

    typealias Handout = (Result<UpstreamConnection, UpstreamError>) -> Void

    let loop: any EventLoop
    /// The loop's, for its connections' requests; taken on the loop when first used.
    private(set) lazy var turnFlush = TurnFlush.onThisThread
    let limits: Limits
    private let tls: NIOSSLContext?
    private var idle: [UpstreamOrigin: [UpstreamConnection]] = [:]
    private var open: [UpstreamOrigin: Int] = [:]
    private var waiting: [UpstreamOrigin: [Handout]] = [:]
    /// Requests waiting in `waiting`, so a release with none waiting hashes no origin for it.
    private var waitingCount = 0
    /// Every open connection, idle or serving, for `closeAll`.
    private var connections: [ObjectIdentifier: UpstreamConnection] = [:]
    /// Closes connections idle for `idleTimeout`; set while any connection is idle.
    private var sweep: Scheduled<Void>?

    init(loop: any EventLoop, limits: Limits, tls: NIOSSLContext?) {
        self.loop = loop
        self.limits = limits
        self.tls = tls
    }

    /// Connections open to `origin`, idle or serving (for tests and stats).
    func openCount(_ origin: UpstreamOrigin) -> Int { open[origin] ?? 0 }
    func idleCount(_ origin: UpstreamOrigin) -> Int { idle[origin]?.count ?? 0 }
    /// Connections to `origin` whose reads wait for a slow reader (for tests).
    func heldCount(_ origin: UpstreamOrigin) -> Int { connections.values.count { $0.origin == origin && $0.isHoldingReads } }

    /// Hands out an idle connection at once, or a new one once connected, or the next one released when the
    /// origin is at its bound. `fresh` skips idle connections (a retry after a reused one failed).
    func acquire(_ origin: UpstreamOrigin, fresh: Bool = false, _ handout: @escaping Handout) {
        loop.assertInEventLoop()
        if !fresh, let connection = popIdle(origin) {
            handout(.success(connection))
            return
        }
        if openCount(origin) < limits.maxPerOrigin {
            connect(origin, handout)
        } else {
            waiting[origin, default: []].append(handout)
            waitingCount += 1
        }
    }

    /// Takes back a connection whose exchange ended cleanly with keep-alive.
    func release(_ connection: UpstreamConnection) {
        let origin = connection.origin
        if waitingCount > 0, let next = nextWaiting(origin) {
            next(.success(connection))
            return
        }
        connection.idleSince = .now()
        idle[origin, default: []].append(connection)
        if sweep == nil { scheduleSweep(at: connection.idleSince + limits.idleTimeout) }
    }

    private func scheduleSweep(at due: NIODeadline) {
        // Weak: the pool keeps the task's handle, and a handle pending when the loop stops would hold the pool.
        sweep = loop.assumeIsolated().scheduleTask(deadline: due) { [weak self] in
            self?.sweep = nil
            self?.sweepIdle()
        }
    }

    /// Closes the connections idle for `idleTimeout`, then sets the sweep for the oldest left. Each origin's
    /// idle list is oldest first, since connections are reused from its end.
    private func sweepIdle() {
        let now = NIODeadline.now()
        var oldestLeft: NIODeadline?
        for (_, list) in idle {
            for connection in list {
                if now >= connection.idleSince + limits.idleTimeout {
                    connection.close()
                } else {
                    oldestLeft = min(oldestLeft ?? connection.idleSince, connection.idleSince)
                    break
                }
            }
        }
        if sweep == nil, let oldestLeft { scheduleSweep(at: oldestLeft + limits.idleTimeout) }
    }

    /// Closes every connection (shutdown).
    func closeAll() {
        sweep?.cancel()
        sweep = nil
        for connection in connections.values { connection.close() }
    }

    /// A connection closed (by either side): it no longer counts, and a waiter gets a new one.
    func closed(_ connection: UpstreamConnection) {
        let origin = connection.origin
        connections[ObjectIdentifier(connection)] = nil
        open[origin] = max((open[origin] ?? 1) - 1, 0)
        if let i = idle[origin]?.firstIndex(where: { $0 === connection }) { idle[origin]?.remove(at: i) }
        if waitingCount > 0, let next = nextWaiting(origin) { connect(origin, next) }
    }

    /// The longest waiting request for `origin`, taken off its queue.
    private func nextWaiting(_ origin: UpstreamOrigin) -> Handout? {
        guard var queue = waiting.removeValue(forKey: origin), !queue.isEmpty else { return nil }
        let next = queue.removeFirst()
        if !queue.isEmpty { waiting[origin] = queue }
        waitingCount -= 1
        return next
    }

    /// The newest idle connection to `origin` that is still open. The list is changed where it is: copied out of
    /// the dictionary, it would be copied whole on every request.
    private func popIdle(_ origin: UpstreamOrigin) -> UpstreamConnection? {
        guard let list = idle.index(forKey: origin) else { return nil }
        while let connection = idle.values[list].popLast() {
            if connection.isOpen { return connection }
        }
        return nil
    }

    private func connect(_ origin: UpstreamOrigin, _ handout: @escaping Handout) {
        open[origin, default: 0] += 1
        let connection = UpstreamConnection(origin: origin, pool: self)
        // The channel is made on this loop: its initializer runs here too.
        let handler = NIOLoopBound(connection, eventLoop: loop)
        let tls = origin.tls ? self.tls : nil
        if origin.tls, tls == nil {
            open[origin, default: 1] -= 1
            handout(.failure(.connectFailed("TLS is not available")))
            return
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: origin.hostIsAddress ? nil : origin.host)
                        try sync.addHandler(handler)
                    }
                    // Not checked again as each request is written (about 2% of a request's CPU): every header sent is
                    // fixed or built from the table, whose keys, headers and base URLs are checked when it is loaded
                    // (`HeaderText`).
                    try sync.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try sync.addHandler(handler.value)
                }
            }
        bootstrap.connect(host: origin.host, port: origin.port).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                connections[ObjectIdentifier(connection)] = connection
                handout(.success(connection))
            case .failure(let error):
                open[origin] = max((open[origin] ?? 1) - 1, 0)
                if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                    handout(.failure(.connectTimeout))
                } else {
                    handout(.failure(.connectFailed("\(error)")))
                }
            }
        }
    }
}
