import Foundation

// Requests and responses of OpenAI's completions and chat completions APIs: the subset
// this server implements. Unknown request fields are ignored. Responses spell out `null`
// where OpenAI does (finish_reason, logprobs), so strict clients find every field.

// MARK: - Requests

/// `stop`: one string, a list of strings, or null.
struct StopSequences: Decodable {
    var values: [String]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            values = []
        } else if let one = try? container.decode(String.self) {
            values = [one]
        } else {
            values = try container.decode([String].self)
        }
    }
}

struct StreamOptions: Decodable {
    var includeUsage: Bool?

    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
}

/// The fields completions and chat completions share.
struct CommonRequestFields: Decodable {
    var model: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var minP: Double?
    var repetitionPenalty: Double?
    var presencePenalty: Double?
    var frequencyPenalty: Double?
    var n: Int?
    var stop: StopSequences?
    var seed: Int64?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var user: String?
    /// An extension (vLLM's name): keep only the prompt's last k tokens (-1: as many as
    /// the context holds) instead of refusing a prompt longer than the context.
    var truncatePromptTokens: Int?

    enum CodingKeys: String, CodingKey {
        case model, temperature, n, stop, seed, stream, user
        case truncatePromptTokens = "truncate_prompt_tokens"
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p", topK = "top_k", minP = "min_p"
        case repetitionPenalty = "repetition_penalty", presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
        case streamOptions = "stream_options"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        maxTokens = try c.decodeInteger(Int.self, forKey: .maxTokens)
        maxCompletionTokens = try c.decodeInteger(Int.self, forKey: .maxCompletionTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.decodeInteger(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        n = try c.decodeInteger(Int.self, forKey: .n)
        stop = try c.decodeIfPresent(StopSequences.self, forKey: .stop)
        seed = try c.decodeInteger(Int64.self, forKey: .seed)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        truncatePromptTokens = try c.decodeInteger(Int.self, forKey: .truncatePromptTokens)
    }
}

extension KeyedDecodingContainer {
    /// An optional integer field. JSONDecoder reports a number that is no integer of the
    /// type (2.5, 1e20) as invalid JSON for the whole body; this names the field instead.
    func decodeInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        if let value = try? decode(T.self, forKey: key) { return value }
        throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath + [key], debugDescription: "expected an integer"))
    }
}

/// POST /v1/completions
struct CompletionRequest: Decodable {
    var common: CommonRequestFields
    var prompt: String?
    /// The number of alternatives to report per token (0 still reports the chosen token's).
    var logprobs: Int?

    enum CodingKeys: String, CodingKey { case prompt, logprobs }

    init(from decoder: any Decoder) throws {
        common = try CommonRequestFields(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        logprobs = try c.decodeInteger(Int.self, forKey: .logprobs)
        // A prompt is a string; a list holding one string is accepted too.
        if let list = try? c.decodeIfPresent([String].self, forKey: .prompt) {
            guard list.count == 1 else {
                throw APIError.invalid("Only a single prompt string is supported (got a list of \(list.count)).", param: "prompt")
            }
            prompt = list[0]
        } else {
            prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
        }
    }
}

/// A message's content: a string, or a list of parts of which only text parts are supported.
struct MessageContent: Decodable {
    struct Part: Decodable {
        var type: String
        var text: String?
    }

    var text: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            text = ""
        } else if let string = try? container.decode(String.self) {
            text = string
        } else {
            let parts = try container.decode([Part].self)
            var joined = ""
            for (i, part) in parts.enumerated() {
                let at = (decoder.codingPath + [IndexKey(i)]).paramName
                guard part.type == "text" else {
                    throw APIError.invalid("Content parts of type '\(part.type)' are not supported; only 'text'.", param: at + ".type")
                }
                guard let text = part.text else { throw APIError.invalid("A text part needs 'text'.", param: at + ".text") }
                joined += text
            }
            text = joined
        }
    }
}

struct RequestMessage: Decodable {
    var role: String
    var content: MessageContent?
}

/// POST /v1/chat/completions
struct ChatRequest: Decodable {
    var common: CommonRequestFields
    var messages: [RequestMessage]?
    var logprobs: Bool?
    var topLogprobs: Int?

    enum CodingKeys: String, CodingKey {
        case messages, logprobs
        case topLogprobs = "top_logprobs"
    }

    init(from decoder: any Decoder) throws {
        common = try CommonRequestFields(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decodeIfPresent([RequestMessage].self, forKey: .messages)
        logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs)
        topLogprobs = try c.decodeInteger(Int.self, forKey: .topLogprobs)
    }
}

/// An integer coding key, to name a list element in an error's `param`.
struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}

extension [any CodingKey] {
    /// OpenAI's way to name a field: `messages[0].content`.
    var paramName: String {
        var out = ""
        for key in self {
            if let i = key.intValue {
                out += "[\(i)]"
            } else {
                out += out.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return out
    }
}

// MARK: - Responses

struct Usage: Encodable, Equatable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
    }
}

/// GET /v1/models
struct ModelList: Encodable {
    var object = "list"
    var data: [ModelInfo]
}

struct ModelInfo: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var ownedBy = "swift-slm"

    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
    }
}

/// Chat log-probabilities: `{"content": [...]}`.
struct ChatLogprobs: Encodable {
    struct Alternative: Encodable {
        var token: String
        var logprob: Double
        var bytes: [UInt8]
    }

    struct Entry: Encodable {
        var token: String
        var logprob: Double
        var bytes: [UInt8]
        var topLogprobs: [Alternative]

        enum CodingKeys: String, CodingKey {
            case token, logprob, bytes
            case topLogprobs = "top_logprobs"
        }
    }

    var content: [Entry]
}

/// Completions log-probabilities: parallel lists.
struct CompletionLogprobs: Encodable {
    var tokens: [String] = []
    var tokenLogprobs: [Double] = []
    var topLogprobs: [[String: Double]] = []
    var textOffset: [Int] = []

    enum CodingKeys: String, CodingKey {
        case tokens
        case tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
    }
}

struct AssistantMessage: Encodable {
    var role = "assistant"
    var content: String
}

/// A chat.completion object.
struct ChatCompletion: Encodable {
    struct Choice: Encodable {
        var index: Int
        var message: AssistantMessage
        var logprobs: ChatLogprobs?
        var finishReason: String

        enum CodingKeys: String, CodingKey {
            case index, message, logprobs
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encode(logprobs, forKey: .logprobs)  // null when not asked for
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
}

/// The fields every completion object and chunk carries, in OpenAI's order. `usage` is
/// written (null included) only when `includeUsage`: streamed chunks carry it only when
/// the client asked for it.
private enum CompletionEnvelopeKeys: String, CodingKey { case id, object, created, model, choices, usage }

private func encodeCompletionEnvelope<Choice: Encodable>(
    to encoder: any Encoder, id: String, object: String, created: Int, model: String, choices: [Choice],
    usage: Usage?, includeUsage: Bool
) throws {
    var c = encoder.container(keyedBy: CompletionEnvelopeKeys.self)
    try c.encode(id, forKey: .id)
    try c.encode(object, forKey: .object)
    try c.encode(created, forKey: .created)
    try c.encode(model, forKey: .model)
    try c.encode(choices, forKey: .choices)
    if includeUsage { try c.encode(usage, forKey: .usage) }
}

/// A chat.completion.chunk object.
struct ChatCompletionChunk: Encodable {
    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    struct Choice: Encodable {
        var index: Int
        var delta: Delta
        var logprobs: ChatLogprobs?
        var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, delta, logprobs
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    /// Only when the client asked for usage: null on every chunk but the last.
    var usage: Usage?
    var includeUsageField = false

    func encode(to encoder: any Encoder) throws {
        try encodeCompletionEnvelope(to: encoder, id: id, object: object, created: created, model: model, choices: choices,
                                     usage: usage, includeUsage: includeUsageField)
    }
}

/// A text_completion object (whole, or one streamed chunk).
struct TextCompletion: Encodable {
    struct Choice: Encodable {
        var text: String
        var index: Int
        var logprobs: CompletionLogprobs?
        var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case text, index, logprobs
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    /// Streamed chunks carry usage only when asked, as null until the last.
    var includeUsageField = true

    func encode(to encoder: any Encoder) throws {
        try encodeCompletionEnvelope(to: encoder, id: id, object: object, created: created, model: model, choices: choices,
                                     usage: usage, includeUsage: includeUsageField)
    }
}

/// `{"error": {"message", "type", "param", "code"}}`
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var message: String
        var type: String
        var param: String?
        var code: String?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }
    }

    var error: Detail
}

/// Ids like OpenAI's: a prefix and 24 random letters and digits.
func makeResponseID(_ prefix: String) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return prefix + String((0..<24).map { _ in alphabet.randomElement()! })
}

func unixTime() -> Int { Int(Date().timeIntervalSince1970) }
