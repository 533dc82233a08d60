import HTTPTypes
import NIOCore
import SwitchyardCore

/// The chat path's answer to a `/v1/messages` request, turned into Anthropic's shapes on its way out: a plain
/// answer whole (a `message`, an SSE replay, or `{"type":"error",…}`), a stream event by event as the relay
/// writes it. Both of the route's writers use it: `ChatChannelHandler` on the connection's loop and
/// `AnthropicEventWriter` on Hummingbird's path.
///
/// The relay's own error event (`data: {"error":…}`, a stream that could not be finished) becomes Anthropic's
/// `error` event; a stream that ends without a finish reason ends with one too, never with `message_stop`.
struct MessagesShape: Sendable {
    let model: String
    let stream: Bool
    let stopSequences: [String]
    let inputTokens: Int
    private var events: AnthropicStream
    /// Bytes of a relayed event not yet whole.
    private var partial: [UInt8] = []

    /// `inputTokens` is the gateway's estimate of the translated prompt, the one routing used.
    init(_ request: AnthropicRequest, inputTokens: Int) {
        model = request.model
        stream = request.stream
        stopSequences = request.stopSequences
        self.inputTokens = inputTokens
        events = AnthropicStream(model: request.model, inputTokens: inputTokens, stopSequences: request.stopSequences)
    }

    // MARK: whole answers

    /// A whole answer in Anthropic's shape: an error for anything but a 200; for a 200 the message, or, for a
    /// streaming request (a hit replayed, a route's last resort), its events translated at once.
    func plain(_ answer: PlainAnswer) -> PlainAnswer {
        guard answer.status == .ok else { return Self.error(answer) }
        var fields = answer.fields
        if stream {
            let events = AnthropicStream.translate(
                sse: Array(answer.body.readableBytesView), model: model, inputTokens: inputTokens, stopSequences: stopSequences)
            fields[.contentType] = "text/event-stream"
            return PlainAnswer(status: .ok, fields: fields, body: ByteBuffer(bytes: events))
        }
        guard
            let message = AnthropicAnswer.translate(
                completion: Array(answer.body.readableBytesView), model: model, stopSequences: stopSequences, estimatedInputTokens: inputTokens)
        else {
            return Self.error(AnthropicError(status: 502, type: "api_error", message: "the upstream's answer could not be read as a chat completion"))
        }
        fields[.contentType] = "application/json"
        return PlainAnswer(status: .ok, fields: fields, body: ByteBuffer(bytes: message.body))
    }

    /// A chat path error (OpenAI's shape) in Anthropic's, with its headers (`Retry-After`, `x-switchyard-*`).
    static func error(_ answer: PlainAnswer) -> PlainAnswer {
        var translated = error(AnthropicError.from(status: answer.status.code, openAIBody: Array(answer.body.readableBytesView)))
        for field in answer.fields where field.name != .contentType { translated.fields.append(field) }
        return translated
    }

    static func error(_ error: AnthropicError) -> PlainAnswer {
        PlainAnswer(status: .init(code: error.status), fields: [.contentType: "application/json"], body: ByteBuffer(bytes: error.body))
    }

    // MARK: streams

    /// Anthropic's events for the relayed bytes `part` (OpenAI events framed `data: …\n\n`); an event split
    /// across parts is translated once whole.
    mutating func streamPart(_ part: ByteBuffer) -> [UInt8] {
        partial += part.readableBytesView
        var out: [UInt8] = []
        var start = 0
        while let end = Self.eventEnd(in: partial, from: start) {
            out += translate(partial[start..<end])
            start = end + 2
        }
        partial.removeFirst(start)
        return out
    }

    /// What ends the stream: `message_delta` and `message_stop` for a whole answer not yet closed, an `error`
    /// event for one that stopped short, nothing once closed.
    mutating func streamEnd() -> [UInt8] {
        guard !events.isClosed else { return [] }
        return events.isComplete ? events.finish() : events.fail(message: "the stream ended before the answer was complete")
    }

    /// Anthropic's events for one relayed event.
    private mutating func translate(_ event: ArraySlice<UInt8>) -> [UInt8] {
        let prefix = Array("data: ".utf8)
        guard event.starts(with: prefix) else { return [] }
        let data = Array(event.dropFirst(prefix.count))
        if data.starts(with: Array(#"{"error":"#.utf8)) {
            return events.isClosed ? [] : events.fail(AnthropicError.from(status: 502, openAIBody: data))
        }
        return events.feed(data)
    }

    /// Where the event starting at `start` ends (its blank line), if it is whole.
    private static func eventEnd(in bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "\n"), bytes[i + 1] == UInt8(ascii: "\n") { return i }
            i += 1
        }
        return nil
    }
}
