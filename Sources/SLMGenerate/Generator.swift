import Foundation
import SLMModels
import SLMTensor
import SLMText

public struct GenerationOptions: Sendable {
    public var maxTokens = 256
    public var sampling = SamplingParameters()
    public var stop: [String] = []
    /// Alternatives to report with each token's log-probability (0: none).
    public var topLogprobs = 0

    public init(maxTokens: Int = 256, sampling: SamplingParameters = SamplingParameters(), stop: [String] = [],
                topLogprobs: Int = 0) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.topLogprobs = topLogprobs
    }
}

public enum FinishReason: String, Sendable {
    /// A stop string or the end-of-text token.
    case stop
    /// The token limit.
    case length
    /// The caller stopped listening (a client disconnected).
    case cancelled
}

/// One generated token: the text it releases (possibly empty while bytes or a possible
/// stop string are held back) and its log-probabilities.
public struct GeneratedToken: Sendable {
    public var id: Int32
    public var text: String
    public var logprob: Double
    public var top: [(token: String, logprob: Double)]
}

public struct GenerationResult: Sendable {
    public var text: String
    public var finishReason: FinishReason
    public var promptTokens: Int
    public var completionTokens: Int
}

/// Generates text from a model with a KV cache: the prompt costs one pass, every new
/// token one pass over the cached context. When the context fills, the most recent half
/// is kept and re-read, and generation carries on.
public final class Generator {
    public let model: any LanguageModel
    public let tokenizer: any Tokenizer
    let endOfText: Int32?

    public init(model: any LanguageModel, tokenizer: any Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
        endOfText = tokenizer.specialTokens["<|endoftext|>"]
    }

    /// Runs generation; `onToken` returns false to cancel.
    public func generate(prompt: [Int32], options: GenerationOptions,
                         onToken: (GeneratedToken) -> Bool = { _ in true }) -> GenerationResult {
        var sampler = Sampler(options.sampling)
        sampler.observe(prompt)
        var stream = TextStream(stops: options.stop)
        let cache = KVCache(model.config)
        let context = model.config.context
        var window = prompt.isEmpty ? [endOfText ?? 0] : Array(prompt.suffix(context))
        var produced = 0
        var logits = Autograd.noGrad { model.logits(window, cache: cache) }
        var row = window.count - 1
        while produced < options.maxTokens {
            let choice = sampler.sample(logits.data + row * model.config.vocabSize, count: model.config.vocabSize,
                                        topLogprobs: options.topLogprobs)
            produced += 1
            if choice.id == endOfText {
                let tail = stream.finish()
                if !tail.isEmpty { _ = onToken(GeneratedToken(id: choice.id, text: tail, logprob: choice.logprob, top: [])) }
                return GenerationResult(text: stream.text, finishReason: .stop, promptTokens: prompt.count, completionTokens: produced)
            }
            let released = stream.push(tokenizer.tokenBytes(choice.id) ?? [])
            let top = choice.top.map { (String(decoding: tokenizer.tokenBytes($0.id) ?? [], as: UTF8.self), $0.logprob) }
            guard onToken(GeneratedToken(id: choice.id, text: released, logprob: choice.logprob, top: top)) else {
                return GenerationResult(text: stream.text, finishReason: .cancelled, promptTokens: prompt.count, completionTokens: produced)
            }
            if stream.stopped {
                return GenerationResult(text: stream.text, finishReason: .stop, promptTokens: prompt.count, completionTokens: produced)
            }
            window.append(choice.id)
            if cache.remaining == 0 {
                // Full: keep the most recent half and read it again at fresh positions.
                window = Array(window.suffix(context / 2))
                cache.reset()
                logits = Autograd.noGrad { model.logits(window, cache: cache) }
                row = window.count - 1
            } else {
                logits = Autograd.noGrad { model.logits([choice.id], cache: cache) }
                row = 0
            }
        }
        let tail = stream.finish()
        if !tail.isEmpty { _ = onToken(GeneratedToken(id: -1, text: tail, logprob: 0, top: [])) }
        return GenerationResult(text: stream.text, finishReason: .length, promptTokens: prompt.count, completionTokens: produced)
    }
}
