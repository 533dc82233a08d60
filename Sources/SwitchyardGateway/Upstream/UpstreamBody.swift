import NIOCore
import SwitchyardCore

/// Builds the body sent upstream from the client's bytes: only `model` is rewritten; route defaults are
/// added where the client left a field out; a continuation appends the partial answer as an assistant prefill.
/// Every other field, known or not, passes through byte for byte: no decoding, no re-encoding.
enum UpstreamBody {
    /// `with` in place of the `replacing` bytes at `at` of the client's body.
    private struct Edit {
        var at: Int
        var replacing: Int
        var with: [UInt8]
    }

    static func build(
        original: ByteBuffer, summary: ChatRequestSummary, upstreamModel: [UInt8], defaults: [String: String],
        prefill: String? = nil
    ) -> ByteBuffer {
        let model = Edit(at: summary.modelRange.lowerBound, replacing: summary.modelRange.count, with: upstreamModel)
        let continuation = prefill.map { text in
            var message = Array(#",{"role":"assistant","content":"#.utf8)
            JSONText.appendQuoted(text, to: &message)
            message.append(UInt8(ascii: "}"))
            return Edit(at: summary.messagesEnd, replacing: 0, with: message)
        }
        var added: [UInt8] = []
        for (name, json) in defaults.sorted(by: { $0.key < $1.key }) where !summary.has(field: name) {
            added.append(UInt8(ascii: ","))
            JSONText.appendQuoted(name, to: &added)
            added.append(UInt8(ascii: ":"))
            added.append(contentsOf: json.utf8)
        }
        let fields = added.isEmpty ? nil : Edit(at: summary.objectEnd, replacing: 0, with: added)
        let view = original.readableBytesView
        let base = view.startIndex
        let growth = model.with.count - model.replacing + (continuation?.with.count ?? 0) + (fields?.with.count ?? 0)
        var out = ByteBufferAllocator().buffer(capacity: view.count + growth)
        var position = 0
        func apply(_ edit: Edit?) {
            guard let edit else { return }
            out.writeBytes(view[(base + position)..<(base + edit.at)])
            out.writeBytes(edit.with)
            position = edit.at + edit.replacing
        }
        // In the body's order, with no list to sort: `model` may come before or after the messages; added fields
        // go before the object's closing brace, after both.
        if let continuation, continuation.at < model.at {
            apply(continuation)
            apply(model)
        } else {
            apply(model)
            apply(continuation)
        }
        apply(fields)
        out.writeBytes(view[(base + position)...])
        return out
    }
}
