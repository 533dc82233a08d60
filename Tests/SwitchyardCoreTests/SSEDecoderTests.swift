import Testing

@testable import SwitchyardCore

/// An upstream's event stream arrives in chunks cut anywhere; the events must not depend on where.
struct SSEDecoderTests {
    static let stream = Array(
        (": OPENROUTER PROCESSING\r\n\r\n"
            + "data: {\"a\":1}\n\n"
            + "event: message\nid: 7\ndata:{\"b\":2}\r\n\r\n"
            + "data: first line\ndata: second line\n\n"
            + "retry: 100\n\n"
            + "data: [DONE]\n\n").utf8)
    static let events = [#"{"a":1}"#, #"{"b":2}"#, "first line\nsecond line", "[DONE]"]

    static func decode(_ chunks: [ArraySlice<UInt8>]) -> (events: [String], partial: Bool) {
        var decoder = SSEDecoder()
        var out: [String] = []
        for chunk in chunks { decoder.feed(Array(chunk)) { out.append(String(decoding: $0, as: UTF8.self)) } }
        return (out, decoder.hasPartialEvent)
    }

    @Test func eventsAreTheSameWhateverTheChunking() {
        #expect(Self.decode([Self.stream[...]]).events == Self.events)
        #expect(Self.decode(Self.stream.indices.map { Self.stream[$0...$0] }).events == Self.events, "a byte at a time")
        for size in [2, 3, 5, 7, 13, 64] {
            let chunks = stride(from: 0, to: Self.stream.count, by: size).map { Self.stream[$0..<min($0 + size, Self.stream.count)] }
            #expect(Self.decode(chunks).events == Self.events, "chunks of \(size)")
        }
    }

    @Test func aStreamCutMidEventLeavesAPartialEventAndEmitsNothingOfIt() {
        let cut = Array("data: {\"a\":1}\n\ndata: {\"b\"".utf8)
        let (events, partial) = Self.decode([cut[...]])
        #expect(events == [#"{"a":1}"#])
        #expect(partial)
        let whole = Self.decode([Self.stream[...]])
        #expect(!whole.partial)
    }

    @Test func anEventOverTheLimitIsDroppedAndFlagged() {
        var decoder = SSEDecoder()
        var out: [[UInt8]] = []
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: SSEDecoder.maxEventBytes + 1)
        decoder.feed(Array("data: ".utf8) + big) { out.append($0) }
        decoder.feed(Array("\n\ndata: ok\n\n".utf8)) { out.append($0) }
        #expect(decoder.overflowed)
        #expect(out.map { String(decoding: $0, as: UTF8.self) } == ["ok"])
    }
}
