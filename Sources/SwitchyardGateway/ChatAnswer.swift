import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore

/// A whole answer to a chat request (not a stream): status, headers, body. The channel handler writes it on
/// its event loop; Hummingbird's router gets it as a `Response`.
struct PlainAnswer: Sendable {
    var status: HTTPResponse.Status
    var fields: HTTPFields
    var body: ByteBuffer

    init(status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer) {
        self.status = status
        self.fields = fields
        self.body = body
    }

    /// An error in OpenAI's shape, with `extra` headers.
    init(_ error: GatewayError, headers extra: HTTPFields = [:]) {
        var fields = extra
        fields[.contentType] = "application/json"
        if let retryAfter = error.retryAfter { fields[.retryAfter] = String(retryAfter) }
        for (name, value) in error.extraHeaders { fields[name] = value }
        self.init(status: error.status, fields: fields, body: ByteBuffer(string: error.json))
    }

    var response: Response { Response(status: status, headers: fields, body: .init(byteBuffer: body)) }
}

extension ChatCompletionsRoute {
    /// The `x-switchyard-*` headers of an answer from `model` on `key`.
    func headers(_ chat: ChatRequest, model: ModelID, key: KeyID, attempts: Int, cache: String) -> HTTPFields {
        // Appended, not set: the names are distinct, and setting looks each one up first.
        var headers = HTTPFields()
        headers.reserveCapacity(8)
        headers.append(HTTPField(name: Self.route, value: chat.route.name))
        headers.append(HTTPField(name: Self.model, value: chat.snapshot.table.models[model].name))
        headers.append(HTTPField(name: Self.key, value: chat.snapshot.table.keys[key].label))
        headers.append(HTTPField(name: Self.attempts, value: String(attempts)))
        headers.append(HTTPField(name: Self.cache, value: cache))
        return headers
    }

    /// A hit's answer: the JSON, or an SSE replay for a streaming request.
    func hitAnswer(_ hit: CachedAnswer, _ chat: ChatRequest) -> PlainAnswer {
        var headers = HTTPFields()
        headers.reserveCapacity(9)
        headers.append(HTTPField(name: Self.route, value: chat.route.name))
        headers.append(HTTPField(name: Self.model, value: hit.modelName))
        headers.append(HTTPField(name: Self.key, value: hit.keyLabel))
        headers.append(HTTPField(name: Self.attempts, value: "0"))
        headers.append(HTTPField(name: Self.cache, value: "hit"))
        if chat.summary.stream {
            headers.append(HTTPField(name: .contentType, value: "text/event-stream"))
            headers.append(HTTPField(name: .cacheControl, value: "no-cache"))
            return PlainAnswer(status: .ok, fields: headers, body: ByteBuffer(bytes: hit.sseEvents))
        }
        headers.append(HTTPField(name: .contentType, value: "application/json"))
        return PlainAnswer(status: .ok, fields: headers, body: ByteBuffer(bytes: hit.completionJSON))
    }

    /// An upstream answer: kept in the cache when complete, handed to identical requests waiting, logged.
    func answered(_ answer: Dispatcher.Answer, _ admitted: Admitted) -> PlainAnswer {
        let chat = admitted.chat
        let table = chat.snapshot.table
        if let cacheKey = admitted.cacheKey {
            let (bytes, model, key) = (Array(answer.body.readableBytesView), table.models[answer.model].name, table.keys[answer.key].label)
            let stored =
                chat.endpoint == .embeddings
                ? CachedAnswer.verbatim(body: bytes, modelName: model, keyLabel: key)
                : CachedAnswer.fromCompletion(body: bytes, modelName: model, keyLabel: key)
            if let stored { keep(stored, for: cacheKey, table) }
            admitted.ticket?.land(stored)
        }
        var fields = headers(chat, model: answer.model, key: answer.key, attempts: answer.attempts, cache: admitted.cacheHeader)
        fields.append(HTTPField(name: .contentType, value: "application/json"))
        logRequest(
            chat, status: answer.status, model: answer.model, key: answer.key, attempts: answer.attempts, started: admitted.started,
            cache: admitted.cacheHeader)
        return PlainAnswer(status: .init(code: answer.status), fields: fields, body: answer.body)
    }

    /// No candidate answered (before any stream output): release followers, log, and answer with the route's
    /// last resort for upstream failures, else the error.
    func failed(_ error: GatewayError, attempts: Int, _ admitted: Admitted) -> PlainAnswer {
        let chat = admitted.chat
        admitted.ticket?.land(nil)
        logRequest(
            chat, status: error.status.code, model: nil, key: nil, attempts: attempts, started: admitted.started, cache: admitted.cacheHeader,
            error: error.message)
        if let answer = chat.route.lastResort, error.status.code >= 500 { return lastResort(answer, chat) }
        var headers = HTTPFields()
        headers[Self.route] = chat.route.name
        headers[Self.attempts] = String(attempts)
        headers[Self.cache] = admitted.cacheHeader
        return PlainAnswer(error, headers: headers)
    }

    /// What a walk through the candidates came to, as the answer.
    func finished(_ completion: Dispatcher.Completion, _ admitted: Admitted) -> PlainAnswer {
        switch completion {
        case .answered(let answer): answered(answer, admitted)
        case .failed(let error, let attempts): failed(error, attempts: attempts, admitted)
        }
    }

    /// The route's fixed answer, for apps that prefer a polite message to an error.
    private func lastResort(_ text: String, _ chat: ChatRequest) -> PlainAnswer {
        var headers = HTTPFields()
        headers[Self.route] = chat.route.name
        headers[Self.lastResort] = "true"
        headers[Self.cache] = "bypass"
        let created = Int(clock.now().secondsSinceEpoch)
        if chat.summary.stream {
            headers[.contentType] = "text/event-stream"
            let chunk = #"{"id":"switchyard-last-resort","object":"chat.completion.chunk","created":\#(created),"model":\#(JSONText.quoted(chat.route.name)),"choices":[{"index":0,"delta":{"role":"assistant","content":\#(JSONText.quoted(text))},"finish_reason":"stop"}]}"#
            return PlainAnswer(status: .ok, fields: headers, body: ByteBuffer(string: "data: \(chunk)\n\ndata: [DONE]\n\n"))
        }
        headers[.contentType] = "application/json"
        let body = #"{"id":"switchyard-last-resort","object":"chat.completion","created":\#(created),"model":\#(JSONText.quoted(chat.route.name)),"choices":[{"index":0,"message":{"role":"assistant","content":\#(JSONText.quoted(text))},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}"#
        return PlainAnswer(status: .ok, fields: headers, body: ByteBuffer(string: body))
    }

    /// Keeps a complete answer in the memory tier and, with replicas, in the shared one.
    func keep(_ answer: CachedAnswer, for key: CacheKey, _ table: RoutingTable) {
        let now = clock.now()
        cache.store(answer, for: key, at: now)
        sharedCache?.add(answer, for: key, at: now, ttl: table.cache.ttl)
    }

    /// One line per request. Preformatted rather than metadata: building and sorting a metadata dictionary
    /// per request cost more than the routing decision itself.
    func logRequest(
        _ chat: ChatRequest, status: Int, model: ModelID?, key: KeyID?, attempts: Int, started: UInt64, cache: String,
        error: String? = nil, continuations: Int = 0
    ) {
        dispatcher.activity.request(status: status, attempts: attempts, cacheHit: cache == "hit", continuations: continuations)
        let table = chat.snapshot.table
        let micros = (Monotonic.now() &- started) / 1000
        dispatcher.metrics?.request(
            route: chat.route.name, model: model.map { table.models[$0].name } ?? "-", key: key.map { table.keys[$0].label } ?? "-", status: status,
            cache: cache, seconds: Double(micros) / 1e6, attempts: attempts, continuations: continuations)
        guard logger.logLevel <= .info else { return }
        let line = RequestLogLine(
            route: chat.route.name, model: model.map { table.models[$0].name } ?? "-", key: key.map { table.keys[$0].label } ?? "-",
            attempts: attempts, cache: cache, status: status, stream: chat.summary.stream, micros: micros, continuations: continuations,
            error: error)
        if let handler = logger.handler as? LineLogHandler, handler.log(level: .info, source: Self.logSource, { line.append(to: &$0) }) { return }
        logger.info("\(line.text)")
    }

    /// What swift-log gives as the source of this module's lines.
    static let logSource = "SwitchyardGateway"
}
