import SLMTensor

/// What a model keeps between calls while it reads one sequence token by token: keys and
/// values for attention (`KVCache`), the tokens themselves for mixers read in full.
public protocol InferenceState: AnyObject {
    /// Tokens read so far.
    var length: Int { get }
    /// The most it can hold (the model's context).
    var capacity: Int { get }
    /// Forgets everything read.
    func reset()
}

extension InferenceState {
    public var remaining: Int { capacity - length }
}

/// The tokens a model has read, for architectures without an incremental form yet
/// (MonarchSLM, SymbioSLM): each call re-reads the whole sequence, O(length) per token.
public final class TokenHistory: InferenceState {
    public private(set) var tokens: [Int32] = []
    public let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    public var length: Int { tokens.count }
    public func reset() { tokens.removeAll(keepingCapacity: true) }

    /// Appends `ids` and returns the model's logits for them, [ids.count, vocab].
    func read(_ ids: [Int32], with model: any LanguageModel) -> Tensor {
        precondition(!ids.isEmpty && length + ids.count <= capacity,
                     "model: \(length) read + \(ids.count) new tokens exceed the context of \(capacity)")
        tokens += ids
        let vocab = model.config.vocabSize, n = tokens.count
        let all = model.logits(tokens, batch: 1, time: n).reshaped([n, vocab])
        return all.slice(axis: 0, (n - ids.count)..<n)
    }
}

/// A model whose inference state is a `TokenHistory`: it has no incremental form yet, so
/// generation re-reads the window for every token.
public protocol ReadsWindowInFull: LanguageModel {}

extension ReadsWindowInFull {
    public func makeInferenceState() -> any InferenceState { TokenHistory(capacity: config.context) }

    public func logits(_ ids: [Int32], state: any InferenceState) -> Tensor {
        guard let history = state as? TokenHistory else { preconditionFailure("model: \(type(of: state)) is not this model's state") }
        return history.read(ids, with: self)
    }
}
