import Foundation
import SLMGenerate

/// The server's limits and defaults.
public enum ServerLimits {
    /// Request bodies above this are refused with 413.
    public static let maxBodyBytes = 1 << 20
    /// max_tokens must be in 1...maxTokens. The generator slides its window over the
    /// model's context, so the context is no limit; this cap bounds the work of a request.
    public static let maxTokens = 4096
    /// n must be in 1...maxChoices.
    public static let maxChoices = 16
    /// At most this many stop strings (as OpenAI).
    public static let maxStops = 4
    /// top_logprobs (chat) and logprobs (completions) are at most this.
    public static let maxTopLogprobs = 20
    /// max_tokens when a request names none: OpenAI's 16 for completions; 256 for chat.
    public static let defaultCompletionMaxTokens = 16
    public static let defaultChatMaxTokens = 256
}

/// What a valid request asks of the scheduler.
struct GenerationPlan {
    var prompt: String
    /// One entry per choice (seeds seed, seed+1, …).
    var choices: [GenerationOptions]
    var stream: Bool
    var includeUsage: Bool
    /// nil: no log-probabilities; else how many alternatives per token.
    var logprobs: Int?
    /// Keep only the prompt's last tokens (`truncate_prompt_tokens`; Int.max for -1).
    var keepLast: Int? = nil
    /// How the prompt field is named in errors: "messages" or "prompt".
    var promptParam = "prompt"
}

/// Checks the shared fields against the model and the limits; returns the per-choice
/// options. Errors name the offending field in `param`.
func validate(_ c: CommonRequestFields, modelName: String, defaultMaxTokens: Int, extraStops: [String] = [],
              topLogprobs: Int = 0) throws -> (choices: [GenerationOptions], stream: Bool, includeUsage: Bool, keepLast: Int?) {
    guard let model = c.model else { throw APIError.invalid("You must provide a model parameter.", param: "model", code: "missing_required_parameter") }
    guard model == modelName else { throw APIError.modelNotFound(model) }

    let maxTokens: Int
    if let m = c.maxCompletionTokens {
        guard (1...ServerLimits.maxTokens).contains(m) else { throw outOfRange("max_completion_tokens", "between 1 and \(ServerLimits.maxTokens)", m) }
        maxTokens = m
    } else if let m = c.maxTokens {
        guard (1...ServerLimits.maxTokens).contains(m) else { throw outOfRange("max_tokens", "between 1 and \(ServerLimits.maxTokens)", m) }
        maxTokens = m
    } else {
        maxTokens = defaultMaxTokens
    }

    var sampling = SamplingParameters()
    if let t = c.temperature {
        guard t.isFinite, (0...2).contains(t) else { throw outOfRange("temperature", "between 0 and 2", t) }
        sampling.temperature = t
    }
    if let p = c.topP {
        guard p.isFinite, p > 0, p <= 1 else { throw outOfRange("top_p", "greater than 0 and at most 1", p) }
        sampling.topP = p
    }
    if let k = c.topK {
        guard k >= 0 else { throw outOfRange("top_k", "at least 0", k) }
        sampling.topK = k
    }
    if let p = c.minP {
        guard p.isFinite, p >= 0, p < 1 else { throw outOfRange("min_p", "at least 0 and below 1", p) }
        sampling.minP = p
    }
    if let r = c.repetitionPenalty {
        guard r.isFinite, r > 0 else { throw outOfRange("repetition_penalty", "greater than 0", r) }
        sampling.repetitionPenalty = r
    }
    if let p = c.presencePenalty {
        guard p.isFinite, (-2...2).contains(p) else { throw outOfRange("presence_penalty", "between -2 and 2", p) }
        sampling.presencePenalty = p
    }
    if let p = c.frequencyPenalty {
        guard p.isFinite, (-2...2).contains(p) else { throw outOfRange("frequency_penalty", "between -2 and 2", p) }
        sampling.frequencyPenalty = p
    }
    if let problem = sampling.problem { throw APIError.invalid(problem, param: nil) }  // (a guard: checked above)

    let n = c.n ?? 1
    guard (1...ServerLimits.maxChoices).contains(n) else { throw outOfRange("n", "between 1 and \(ServerLimits.maxChoices)", n) }
    let stops = c.stop?.values ?? []
    guard stops.count <= ServerLimits.maxStops else {
        throw APIError.invalid("'stop' holds \(stops.count) strings; at most \(ServerLimits.maxStops) are allowed.", param: "stop")
    }
    let seed = c.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max)
    let stream = c.stream ?? false

    let choices = (0..<n).map { i in
        var s = sampling
        s.seed = seed &+ UInt64(i)
        return GenerationOptions(maxTokens: maxTokens, sampling: s, stop: stops + extraStops, topLogprobs: topLogprobs)
    }
    var keepLast: Int? = nil
    if let k = c.truncatePromptTokens {
        guard k == -1 || k >= 1 else { throw outOfRange("truncate_prompt_tokens", "-1 (the whole context) or at least 1", k) }
        keepLast = k == -1 ? Int.max : k
    }
    return (choices, stream, stream && (c.streamOptions?.includeUsage ?? false), keepLast)
}

func validateChat(_ r: ChatRequest, modelName: String) throws -> GenerationPlan {
    // The model comes first: a request for another model is a 404 whatever else it holds.
    if let model = r.common.model, model != modelName { throw APIError.modelNotFound(model) }
    guard let raw = r.messages else {
        throw APIError.invalid("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
    }
    guard !raw.isEmpty else { throw APIError.invalid("'messages' must hold at least one message.", param: "messages") }
    var messages: [ChatMessage] = []
    for (i, m) in raw.enumerated() {
        let role: ChatRole
        switch m.role {
        case "system", "developer": role = .system
        case "user": role = .user
        case "assistant": role = .assistant
        default:
            throw APIError.invalid("Invalid value for 'messages[\(i)].role': '\(m.role)'. Supported roles: system, developer, user, assistant.",
                                   param: "messages[\(i)].role")
        }
        messages.append(ChatMessage(role: role, content: m.content?.text ?? ""))
    }

    var top: Int? = nil
    if let k = r.topLogprobs {
        guard (0...ServerLimits.maxTopLogprobs).contains(k) else {
            throw outOfRange("top_logprobs", "between 0 and \(ServerLimits.maxTopLogprobs)", k)
        }
        guard r.logprobs == true else { throw APIError.invalid("'logprobs' must be true when 'top_logprobs' is set.", param: "logprobs") }
    }
    if r.logprobs == true { top = r.topLogprobs ?? 0 }

    let v = try validate(r.common, modelName: modelName, defaultMaxTokens: ServerLimits.defaultChatMaxTokens,
                         extraStops: ChatTemplate.stops, topLogprobs: top ?? 0)
    return GenerationPlan(prompt: ChatTemplate.render(messages), choices: v.choices, stream: v.stream,
                          includeUsage: v.includeUsage, logprobs: top, keepLast: v.keepLast, promptParam: "messages")
}

func validateCompletion(_ r: CompletionRequest, modelName: String) throws -> GenerationPlan {
    if let model = r.common.model, model != modelName { throw APIError.modelNotFound(model) }
    guard let prompt = r.prompt else {
        throw APIError.invalid("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
    }
    if let k = r.logprobs {
        guard (0...ServerLimits.maxTopLogprobs).contains(k) else {
            throw outOfRange("logprobs", "between 0 and \(ServerLimits.maxTopLogprobs)", k)
        }
    }
    let v = try validate(r.common, modelName: modelName, defaultMaxTokens: ServerLimits.defaultCompletionMaxTokens,
                         topLogprobs: r.logprobs ?? 0)
    return GenerationPlan(prompt: prompt, choices: v.choices, stream: v.stream, includeUsage: v.includeUsage, logprobs: r.logprobs,
                          keepLast: v.keepLast, promptParam: "prompt")
}

private func outOfRange(_ param: String, _ range: String, _ value: Any) -> APIError {
    APIError.invalid("Invalid value for '\(param)': \(value); it must be \(range).", param: param, code: "invalid_value")
}

/// JSON → a request type, with decoding errors turned into 400s that name the field.
func decodeRequestJSON<T: Decodable>(_ type: T.Type, _ body: Data) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: body)
    } catch let error as DecodingError {
        throw APIError.from(error)
    }
}

/// The two generation routes' body parsers exactly as the server runs them (JSON, then
/// the checks against the model and the limits), for the fuzz harness: a body either
/// becomes a request within the limits or throws the `APIError` the client would get.
public enum RequestParsing {
    /// What a body that passed asks for.
    public struct Accepted: Sendable {
        public var prompt: String
        public var choices: Int
        public var maxTokens: [Int]
        public var stops: [[String]]
        public var topLogprobs: Int?
    }

    public static func chatCompletion(_ body: Data, modelName: String) throws -> Accepted {
        Accepted(try validateChat(try decodeRequestJSON(ChatRequest.self, body), modelName: modelName))
    }

    public static func completion(_ body: Data, modelName: String) throws -> Accepted {
        Accepted(try validateCompletion(try decodeRequestJSON(CompletionRequest.self, body), modelName: modelName))
    }
}

extension RequestParsing.Accepted {
    init(_ plan: GenerationPlan) {
        self.init(prompt: plan.prompt, choices: plan.choices.count, maxTokens: plan.choices.map(\.maxTokens),
                  stops: plan.choices.map(\.stop), topLogprobs: plan.logprobs)
    }
}
