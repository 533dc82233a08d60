import NIOCore
import SwitchyardCore

/// Builds the body sent upstream from the client's bytes: only `model` is rewritten; route defaults are
/// added where the client left a field out; a continuation appends the partial answer as an assistant prefill.
/// Every other field, known or not, passes through byte for byte: no decoding, no re-encoding.
enum UpstreamBody {
    static func build(
        original: ByteBuffer, summary: ChatRequestSummary, upstreamModel: [UInt8], defaults: [String: String],
        prefill: String? = nil
    ) -> ByteBuffer {
        let view = original.readableBytesView
        let base = view.startIndex
        if prefill == nil, defaults.isEmpty {
            // The usual case: only the model is replaced.
            var out = ByteBufferAllocator().buffer(capacity: view.count - summary.modelRange.count + upstreamModel.count)
            out.writeBytes(view[base..<(base + summary.modelRange.lowerBound)])
            out.writeBytes(upstreamModel)
            out.writeBytes(view[(base + summary.modelRange.upperBound)...])
            return out
        }
        var edits: [(at: Int, replacing: Int, with: [UInt8])] = [
            (summary.modelRange.lowerBound, summary.modelRange.count, upstreamModel)
        ]
        if let prefill {
            let message = #",{"role":"assistant","content":\#(JSONText.quoted(prefill))}"#
            edits.append((summary.messagesEnd, 0, Array(message.utf8)))
        }
        if !defaults.isEmpty {
            var added = ""
            for (name, json) in defaults.sorted(by: { $0.key < $1.key }) where !summary.has(field: name) {
                added += "," + JSONText.quoted(name) + ":" + json
            }
            if !added.isEmpty { edits.append((summary.objectEnd, 0, Array(added.utf8))) }
        }
        edits.sort { $0.at < $1.at }
        var out = ByteBufferAllocator().buffer(capacity: view.count + edits.reduce(0) { $0 + $1.with.count } + 16)
        var position = 0
        for edit in edits {
            out.writeBytes(view[(base + position)..<(base + edit.at)])
            out.writeBytes(edit.with)
            position = edit.at + edit.replacing
        }
        out.writeBytes(view[(base + position)...])
        return out
    }
}
