import Foundation

/// Strict decoders of OpenAI's chat.completion and chat.completion.chunk: every required field must be there
/// with the right type, so a response that decodes is one an OpenAI SDK accepts.
struct ChatCompletion: Decodable {
    struct Choice: Decodable {
        struct Message: Decodable {
            let role: String
            let content: String?
        }
        let index: Int
        let message: Message
        let finish_reason: String
    }
    struct Usage: Decodable {
        let prompt_tokens: Int
        let completion_tokens: Int
        let total_tokens: Int
    }
    let id: String
    let object: String
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage?

    static func decode(_ text: String) throws -> ChatCompletion {
        let value = try JSONDecoder().decode(ChatCompletion.self, from: Data(text.utf8))
        guard value.object == "chat.completion" else { throw SchemaError.wrongObject(value.object) }
        return value
    }
}

struct ChatCompletionChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable {
            let role: String?
            let content: String?
        }
        let index: Int
        let delta: Delta
        let finish_reason: String?
    }
    let id: String
    let object: String
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: ChatCompletion.Usage?

    static func decode(_ text: String) throws -> ChatCompletionChunk {
        let value = try JSONDecoder().decode(ChatCompletionChunk.self, from: Data(text.utf8))
        guard value.object == "chat.completion.chunk" else { throw SchemaError.wrongObject(value.object) }
        return value
    }
}

enum SchemaError: Error { case wrongObject(String) }

/// A stream as a strict client sees it: every event a valid chunk, the text, and whether it finished properly.
struct ParsedStream {
    var content = ""
    var finishReason: String?
    var done = false
    var errorEvent: [String: Any]?
    var invalidEvents: [String] = []

    init(_ events: [String]) {
        for event in events {
            if event == "[DONE]" {
                done = true
                continue
            }
            if let chunk = try? ChatCompletionChunk.decode(event) {
                for choice in chunk.choices {
                    content += choice.delta.content ?? ""
                    if let reason = choice.finish_reason { finishReason = reason }
                }
            } else if let object = try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any], let error = object["error"] as? [String: Any] {
                errorEvent = error
            } else {
                invalidEvents.append(event)
            }
        }
    }
}
