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

/// Generates text from a model with its inference state (attention: a KV cache): the
/// prompt costs one pass, every new token one pass over the cached context. When the
/// context fills, the most recent half is kept and re-read, and generation carries on.
public final class Generator {
    public let model: any LanguageModel
    public let tokenizer: any Tokenizer
    /// Weight storage of the fast decoder (int8: weight-only quantisation).
    public let precision: WeightPrecision
    /// How the fast decoder's KV caches store keys and values.
    public let kvCache: KVCacheFormat
    let endOfText: Int32?
    private let fastDecoding: Bool
    private var decodingWeights: DecodingWeights?

    /// `fastDecoding` runs generations on the batch-1 `IncrementalDecoder` (no autograd, all buffers
    /// preallocated); off, they run the model's general forward pass with its `InferenceState`
    /// (the reference the decoder is tested against). The decoder snapshots the weights
    /// at the first generation.
    public init(model: any LanguageModel, tokenizer: any Tokenizer, precision: WeightPrecision = .fp32,
                kvCache: KVCacheFormat = .fp32, fastDecoding: Bool = true) {
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision
        self.kvCache = kvCache
        self.fastDecoding = fastDecoding
        endOfText = tokenizer.endOfTextID
    }

    /// A decoder for one generation, sharing this generator's decode weights.
    func makeDecoder() -> IncrementalDecoder? {
        guard fastDecoding else { return nil }
        if decodingWeights == nil { decodingWeights = model.decodingWeights(precision: precision) }
        return decodingWeights.map { IncrementalDecoder($0, kvCache: kvCache) }
    }

    /// Reads the tokens that `next(deferringRead: true)` and `deferPrompt(upTo:)` left in
    /// `sessions` (distinct sessions of this generator) in one batched decoder step
    /// (`IncrementalDecoder.read(_:chunks:)`, every token a row), so each weight matrix is
    /// read once for all of them.
    public func readPending(_ sessions: [GenerationSession]) {
        let waiting = sessions.filter { !$0.pending.isEmpty }
        guard !waiting.isEmpty else { return }
        let outputs = IncrementalDecoder.read(waiting.map { $0.decoder! }, chunks: waiting.map { $0.pending })
        for (session, out) in zip(waiting, outputs) { session.finishRead(out.baseAddress!) }
    }

    /// A generation that advances one token per `next()`: servers interleave many.
    public func start(prompt: [Int32], options: GenerationOptions) -> GenerationSession {
        GenerationSession(self, prompt: prompt, options: options)
    }

    /// Runs a generation to the end; `onToken` returns false to cancel.
    public func generate(prompt: [Int32], options: GenerationOptions,
                         onToken: (GeneratedToken) -> Bool = { _ in true }) -> GenerationResult {
        let session = start(prompt: prompt, options: options)
        while true {
            switch session.next() {
            case .token(let t):
                if !onToken(t) { return session.cancel() }
            case .finished(let result):
                return result
            }
        }
    }
}

/// One generation in progress.
public final class GenerationSession {
    public enum Step {
        case token(GeneratedToken)
        case finished(GenerationResult)
    }

    let generator: Generator
    let options: GenerationOptions
    let promptCount: Int
    private var sampler: Sampler
    private var stream: TextStream
    /// The fast decoder, or else the model's own forward pass with this state.
    fileprivate let decoder: IncrementalDecoder?
    private let state: (any InferenceState)?
    private var window: [Int32]
    /// Tokens of `window` read so far.
    private var read = 0
    /// The next token's logits: in the decoder's buffer or in `logitsTensor`.
    fileprivate var logits: UnsafePointer<Float>?
    /// Tokens of `window` the decoder has not read yet, though `read` counts them: a sampled
    /// token (`next(deferringRead: true)`) or a chunk of the prompt (`deferPrompt`).
    fileprivate var pending: [Int32] = []
    private var logitsTensor: Tensor?
    private var produced = 0
    public private(set) var result: GenerationResult?

    init(_ generator: Generator, prompt: [Int32], options: GenerationOptions) {
        self.generator = generator
        self.options = options
        promptCount = prompt.count
        sampler = Sampler(options.sampling)
        sampler.observePrompt(prompt)
        stream = TextStream(stops: options.stop)
        decoder = generator.makeDecoder()
        state = decoder == nil ? generator.model.makeInferenceState() : nil
        window = prompt.isEmpty ? [generator.endOfText ?? 0] : Array(prompt.suffix(generator.model.config.context))
    }

    /// Whether the window (the prompt, or the kept half after a context shift) has been
    /// read, so that `next()` costs one token.
    public var isReady: Bool { result != nil || logits != nil || (!pending.isEmpty && read == window.count) }

    /// Reads up to `count` more tokens of the window and says whether it is now all read.
    /// A server reads long prompts this way, a chunk between other generations' tokens,
    /// so that a long prompt does not stall them; `next()` reads whatever is left.
    @discardableResult
    public func readPrompt(upTo count: Int) -> Bool {
        if isReady { return true }
        precondition(count > 0, "readPrompt: count must be positive")
        readPendingAlone()
        if isReady { return true }
        readWindow(upTo: count)
        return isReady
    }

    /// Leaves up to `count` more tokens of the window for `Generator.readPending` to read
    /// together with other sessions' tokens in one batched step (without the fast decoder,
    /// reads them now), and says how many it left. A server reads short prompts this way
    /// while other sessions decode, instead of reading each prompt alone.
    @discardableResult
    public func deferPrompt(upTo count: Int) -> Int {
        if isReady { return 0 }
        precondition(count > 0, "deferPrompt: count must be positive")
        readPendingAlone()
        if isReady { return 0 }
        let chunk = min(count, window.count - read)
        guard decoder != nil else {
            readWindow(upTo: chunk)
            return chunk
        }
        pending = Array(window[read..<(read + chunk)])
        read += chunk
        return chunk
    }

    /// Reads pending tokens on this session's own decoder (no batch to join).
    private func readPendingAlone() {
        guard !pending.isEmpty else { return }
        finishRead(decoder!.prefill(pending).baseAddress!)
    }

    /// The decoder has read `pending`; `out` is its logits after the last of them.
    fileprivate func finishRead(_ out: UnsafePointer<Float>) {
        pending = []
        if read == window.count { logits = out }
    }

    /// Generates the next token, or reports the end (then keeps reporting it). With
    /// `deferringRead` the decoder does not read the new token yet: `Generator.readPending`
    /// reads it together with other sessions' (or the next call, alone).
    public func next(deferringRead: Bool = false) -> Step {
        if let result { return .finished(result) }
        readPendingAlone()
        let model = generator.model
        if logits == nil { readWindow(upTo: window.count) }
        guard produced < options.maxTokens else { return finish(.length) }
        let choice = sampler.sample(logits!, count: model.config.vocabSize,
                                    topLogprobs: options.topLogprobs)
        produced += 1
        if choice.id == generator.endOfText { return finish(.stop) }
        let released = stream.push(generator.tokenizer.tokenBytes(choice.id) ?? [])
        let top = choice.top.map { (String(decoding: generator.tokenizer.tokenBytes($0.id) ?? [], as: UTF8.self), $0.logprob) }
        let token = GeneratedToken(id: choice.id, text: released, logprob: choice.logprob, top: top)
        if stream.stopped {
            result = GenerationResult(text: stream.text, finishReason: .stop, promptTokens: promptCount, completionTokens: produced)
            return .token(token)
        }
        window.append(choice.id)
        if (decoder?.remaining ?? state!.remaining) == 0 {
            // Full: keep the most recent half and read it again at fresh positions (now,
            // or in chunks through readPrompt).
            window = Array(window.suffix(model.config.context / 2))
            decoder?.reset()
            state?.reset()
            read = 0
            logits = nil
            logitsTensor = nil
        } else if let decoder {
            read += 1
            if deferringRead {
                pending = [choice.id]
                logits = nil
            } else {
                logits = decoder.step(choice.id).baseAddress!
            }
        } else {
            read += 1
            let t = Autograd.noGrad { model.logits([choice.id], state: state!) }
            logitsTensor = t
            logits = UnsafePointer(t.data)
        }
        return .token(token)
    }

    /// Reads the window's next `count` tokens at most; the logits are set once the last
    /// one is read.
    private func readWindow(upTo count: Int) {
        let chunk = Array(window[read..<min(window.count, read + count)])
        read += chunk.count
        let done = read == window.count
        if let decoder {
            let out = decoder.prefill(chunk)
            if done { logits = out.baseAddress! }
        } else {
            let t = Autograd.noGrad { generator.model.logits(chunk, state: state!) }
            if done {
                logitsTensor = t
                logits = UnsafePointer(t.data + (chunk.count - 1) * generator.model.config.vocabSize)
            }
        }
    }

    /// Stops early (a client went away); releases the cache.
    @discardableResult
    public func cancel() -> GenerationResult {
        if let result { return result }
        let r = GenerationResult(text: stream.text, finishReason: .cancelled, promptTokens: promptCount, completionTokens: produced)
        result = r
        logits = nil
        pending = []
        logitsTensor = nil
        return r
    }

    private func finish(_ reason: FinishReason) -> Step {
        let tail = stream.finish()
        result = GenerationResult(text: stream.text, finishReason: reason, promptTokens: promptCount, completionTokens: produced)
        if !tail.isEmpty { return .token(GeneratedToken(id: -1, text: tail, logprob: 0, top: [])) }
        return .finished(result!)
    }
}
