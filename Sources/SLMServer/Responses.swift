import Foundation
import NIOCore
import SLMGenerate

// Generation events → OpenAI response bodies: whole (non-streamed) responses and the
// formatters of streamed ones.

typealias StreamedToken = GenerationScheduler.StreamedToken

extension FinishReason {
    /// OpenAI's name (a cancelled choice is never shown to the client that cancelled it).
    var openAI: String { self == .length ? "length" : "stop" }
}

func chatLogprobEntry(_ t: StreamedToken) -> ChatLogprobs.Entry {
    ChatLogprobs.Entry(token: t.token, logprob: t.logprob, bytes: t.bytes,
                       topLogprobs: t.top.map { .init(token: $0.token, logprob: $0.logprob, bytes: Array($0.token.utf8)) })
}

/// One choice of a non-streamed request, as its events arrive.
struct ChoiceAccumulator {
    var text = ""
    /// Real tokens (not the final flush of held text) and where the text stood at each.
    var tokens: [(token: StreamedToken, offset: Int)] = []
    var result: GenerationResult?
    var failure: String?
    private var scalars = 0

    mutating func add(_ event: GenerationScheduler.Event) {
        switch event {
        case .token(let t):
            if !t.isFlush { tokens.append((t, scalars)) }
            text += t.text
            scalars += t.text.unicodeScalars.count
        case .finished(let r):
            result = r
        case .failed(let message):
            failure = message
        }
    }

    /// The assistant's message: the template ends in "Assistant:", so the model's text
    /// starts with a space; the reply does not (the stream drops it too).
    var chatReply: String { String(text.drop(while: \.isWhitespace)) }

    var chatLogprobs: ChatLogprobs { ChatLogprobs(content: tokens.map { chatLogprobEntry($0.token) }) }

    var completionLogprobs: CompletionLogprobs { makeCompletionLogprobs(tokens) }
}

func makeCompletionLogprobs(_ tokens: [(token: StreamedToken, offset: Int)]) -> CompletionLogprobs {
    var lp = CompletionLogprobs()
    for (t, offset) in tokens {
        lp.tokens.append(t.token)
        lp.tokenLogprobs.append(t.logprob)
        var top: [String: Double] = [:]
        for alt in t.top where top[alt.token] == nil { top[alt.token] = alt.logprob }  // most likely first
        lp.topLogprobs.append(top)
        lp.textOffset.append(offset)
    }
    return lp
}

/// Usage over all choices: the prompt once, the completions added up.
func totalUsage(_ results: [GenerationResult]) -> Usage {
    Usage(promptTokens: results.first?.promptTokens ?? 0, completionTokens: results.reduce(0) { $0 + $1.completionTokens })
}

// MARK: - Streams

/// Keeps the parts both stream formats share: metrics, usage, failure.
struct StreamBookkeeping: Sendable {
    let metrics: ServerMetrics
    let started: ContinuousClock.Instant
    var sawToken = false
    var results: [GenerationResult] = []
    var failed = false

    mutating func note(_ event: GenerationScheduler.Event) {
        switch event {
        case .token(let t):
            if !sawToken && !t.isFlush {
                sawToken = true
                metrics.recordFirstToken(seconds: started.secondsSince)
            }
        case .finished(let r):
            metrics.recordTokens(prompt: results.isEmpty ? r.promptTokens : 0, generated: r.completionTokens)
            results.append(r)
        case .failed:
            break
        }
    }

    /// The error event a stream ends with when the server shuts down under it (once).
    mutating func failure() -> [ByteBuffer] {
        guard !failed else { return [] }
        failed = true
        return [SSE.event(APIError.shuttingDown.body)]
    }
}

/// chat.completion.chunk events: the assistant role first, a chunk per token with text,
/// a chunk with the finish reason, usage (when asked), `[DONE]`.
struct ChatStreamFormatter: StreamFormatter {
    let id = makeResponseID("chatcmpl-")
    let created = unixTime()
    let model: String
    let plan: GenerationPlanSummary
    var book: StreamBookkeeping
    /// Log-probabilities of tokens whose text is still held back, per choice.
    var pending: [[ChatLogprobs.Entry]]
    /// Whether a choice has sent text yet (its leading whitespace is dropped).
    var replying: [Bool]

    init(model: String, plan: GenerationPlanSummary, metrics: ServerMetrics, started: ContinuousClock.Instant) {
        self.model = model
        self.plan = plan
        book = StreamBookkeeping(metrics: metrics, started: started)
        pending = Array(repeating: [], count: plan.choices)
        replying = Array(repeating: false, count: plan.choices)
    }

    private func chunk(_ choice: ChatCompletionChunk.Choice) -> ByteBuffer {
        SSE.event(ChatCompletionChunk(id: id, created: created, model: model, choices: [choice], usage: nil,
                                      includeUsageField: plan.includeUsage))
    }

    mutating func opening() -> [ByteBuffer] {
        (0..<plan.choices).map { chunk(.init(index: $0, delta: .init(role: "assistant", content: ""))) }
    }

    mutating func events(for e: GenerationScheduler.ChoiceEvent) -> [ByteBuffer] {
        book.note(e.event)
        let i = e.choice
        switch e.event {
        case .token(let t):
            if plan.logprobs && !t.isFlush { pending[i].append(chatLogprobEntry(t)) }
            let text = replying[i] ? t.text : String(t.text.drop(while: \.isWhitespace))  // (see chatReply)
            guard !text.isEmpty else { return [] }
            replying[i] = true
            defer { pending[i].removeAll() }
            return [chunk(.init(index: i, delta: .init(content: text), logprobs: plan.logprobs ? ChatLogprobs(content: pending[i]) : nil))]
        case .finished(let r):
            defer { pending[i].removeAll() }
            let leftover = plan.logprobs && !pending[i].isEmpty ? ChatLogprobs(content: pending[i]) : nil
            return [chunk(.init(index: i, delta: .init(), logprobs: leftover, finishReason: r.finishReason.openAI))]
        case .failed:
            return book.failure()
        }
    }

    mutating func closing() -> [ByteBuffer] {
        guard !book.failed else { return [] }
        var out: [ByteBuffer] = []
        if plan.includeUsage {
            out.append(SSE.event(ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: totalUsage(book.results),
                                                     includeUsageField: true)))
        }
        out.append(SSE.done)
        return out
    }
}

/// text_completion events: a chunk per token with text, one with the finish reason, usage
/// (when asked), `[DONE]`.
struct CompletionStreamFormatter: StreamFormatter {
    let id = makeResponseID("cmpl-")
    let created = unixTime()
    let model: String
    let plan: GenerationPlanSummary
    var book: StreamBookkeeping
    var pending: [[(token: StreamedToken, offset: Int)]]
    var offsets: [Int]

    init(model: String, plan: GenerationPlanSummary, metrics: ServerMetrics, started: ContinuousClock.Instant) {
        self.model = model
        self.plan = plan
        book = StreamBookkeeping(metrics: metrics, started: started)
        pending = Array(repeating: [], count: plan.choices)
        offsets = Array(repeating: 0, count: plan.choices)
    }

    private func chunk(_ choice: TextCompletion.Choice) -> ByteBuffer {
        SSE.event(TextCompletion(id: id, created: created, model: model, choices: [choice], usage: nil, includeUsageField: plan.includeUsage))
    }

    mutating func opening() -> [ByteBuffer] { [] }

    mutating func events(for e: GenerationScheduler.ChoiceEvent) -> [ByteBuffer] {
        book.note(e.event)
        let i = e.choice
        switch e.event {
        case .token(let t):
            if plan.logprobs && !t.isFlush { pending[i].append((t, offsets[i])) }
            offsets[i] += t.text.unicodeScalars.count
            guard !t.text.isEmpty else { return [] }
            defer { pending[i].removeAll() }
            return [chunk(.init(text: t.text, index: i, logprobs: plan.logprobs ? makeCompletionLogprobs(pending[i]) : nil))]
        case .finished(let r):
            defer { pending[i].removeAll() }
            let leftover = plan.logprobs && !pending[i].isEmpty ? makeCompletionLogprobs(pending[i]) : nil
            return [chunk(.init(text: "", index: i, logprobs: leftover, finishReason: r.finishReason.openAI))]
        case .failed:
            return book.failure()
        }
    }

    mutating func closing() -> [ByteBuffer] {
        guard !book.failed else { return [] }
        var out: [ByteBuffer] = []
        if plan.includeUsage {
            out.append(SSE.event(TextCompletion(id: id, created: created, model: model, choices: [], usage: totalUsage(book.results))))
        }
        out.append(SSE.done)
        return out
    }
}

/// What a stream formatter needs to know of the request.
struct GenerationPlanSummary: Sendable {
    var choices: Int
    var includeUsage: Bool
    var logprobs: Bool

    init(_ plan: GenerationPlan) {
        choices = plan.choices.count
        includeUsage = plan.includeUsage
        logprobs = plan.logprobs != nil
    }
}
