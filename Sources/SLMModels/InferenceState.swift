import SLMTensor

/// What a model keeps between calls while it reads one sequence token by token: keys and
/// values for attention (`KVCache`), per-layer inputs and block products for the attention-free
/// mixers (`MixerState`).
public protocol InferenceState: AnyObject {
    /// Tokens read so far.
    var length: Int { get }
    /// The most it can hold (the model's context).
    var capacity: Int { get }
    /// Forgets everything read.
    func reset()
    /// Memory it holds for a full context.
    var byteCount: Int { get }
}

extension InferenceState {
    public var remaining: Int { capacity - length }
}
