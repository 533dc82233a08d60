import Locking
import NIOCore
import NIOHTTP1

/// An upstream answer whose head has arrived; the body follows as an async sequence of buffers.
struct UpstreamResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: UpstreamResponseBody
}

/// The body of an upstream answer, read as it arrives. Reading slowly holds the upstream connection's reads
/// (backpressure); dropping the sequence or cancelling its reader ends the exchange and closes the connection.
struct UpstreamResponseBody: AsyncSequence, Sendable {
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, AsyncUpstreamExchange
    >
    typealias Element = ByteBuffer

    let producer: Producer
    /// The exchange behind the body, for `cancel`.
    let exchange: AsyncUpstreamExchange

    func makeAsyncIterator() -> Producer.AsyncIterator { producer.makeAsyncIterator() }

    /// Ends the exchange from any thread: its connection closes, and a reader waiting for more gets an error.
    func cancel() {
        exchange.cancel()
    }

    /// The whole body; throws `UpstreamError.tooLarge` past `limit` bytes.
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        let iterator = makeAsyncIterator()
        guard var all = try await iterator.next() else { return ByteBuffer() }
        while var part = try await iterator.next() {
            guard all.readableBytes + part.readableBytes <= limit else { throw UpstreamError.tooLarge(limit) }
            all.writeBuffer(&part)
        }
        guard all.readableBytes <= limit else { throw UpstreamError.tooLarge(limit) }
        return all
    }
}

/// One exchange for an async caller: the head resumes the caller, the body is handed over as an async sequence
/// with backpressure, and cancelling the caller's task (or dropping the body) cancels the exchange.
///
/// Its upstream side runs on the exchange's event loop; `produceMore` and `didTerminate` may come from any
/// thread and hop there.
final class AsyncUpstreamExchange: UpstreamExchangeDelegate, NIOAsyncSequenceProducerDelegate, @unchecked Sendable {
    private let loop: any EventLoop
    private var exchange: UpstreamExchange?
    private var waitingForHead: CheckedContinuation<UpstreamResponse, any Error>?
    private var source: UpstreamResponseBody.Producer.Source?
    private var cancelledEarly = false
    /// Passed through by the loop before it resumes the caller, and by the caller once resumed. A head that arrives
    /// before the caller has suspended is handed over by the concurrency runtime's atomics alone, which
    /// ThreadSanitizer cannot see; the lock makes that hand-over visible to it (one uncontended lock per call).
    /// It guards a flag rather than nothing: a value of no size would share its address with the lock's own field.
    private let handover = Locked(false)

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Starts `makeExchange`'s exchange on the loop and returns once its head arrives.
    func run(_ makeExchange: @escaping @Sendable (AsyncUpstreamExchange) -> UpstreamExchange) async throws -> UpstreamResponse {
        defer { _ = handover.withLock { $0 } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UpstreamResponse, any Error>) in
                loop.execute { [self] in
                    waitingForHead = continuation
                    let exchange = makeExchange(self)
                    self.exchange = exchange
                    if cancelledEarly {
                        exchange.cancel()
                    } else {
                        exchange.start()
                    }
                }
            }
        } onCancel: {
            loop.execute { [self] in
                cancelledEarly = true
                exchange?.cancel()
            }
        }
    }

    // MARK: UpstreamExchangeDelegate (on the loop)

    func upstreamHead(_ head: HTTPResponseHead) {
        let made = UpstreamResponseBody.Producer.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false, delegate: self)
        source = made.source
        let response = UpstreamResponse(status: head.status, headers: head.headers, body: UpstreamResponseBody(producer: made.sequence, exchange: self))
        handover.withLock { $0 = true }
        waitingForHead?.resume(returning: response)
        waitingForHead = nil
    }

    func upstreamBody(_ part: ByteBuffer) -> Bool {
        switch source?.yield(part) {
        case .produceMore: return true
        case .stopProducing: return false
        case .dropped, nil:
            // Nobody reads any more: the consumer's termination cancels the exchange.
            return true
        }
    }

    func upstreamEnd() {
        source?.finish()
        source = nil
    }

    func upstreamFailed(_ error: UpstreamError) {
        if let waitingForHead {
            self.waitingForHead = nil
            waitingForHead.resume(throwing: error)
        } else {
            source?.finish(error)
            source = nil
        }
    }

    /// Cancels the exchange, from any thread.
    func cancel() {
        loop.execute { [self] in exchange?.cancel() }
    }

    // MARK: NIOAsyncSequenceProducerDelegate (any thread)

    func produceMore() {
        loop.execute { [self] in exchange?.resumeReading() }
    }

    func didTerminate() {
        loop.execute { [self] in
            if let exchange, !exchange.isDone { exchange.cancel() }
            source = nil
        }
    }
}
