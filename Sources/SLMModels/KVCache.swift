import SLMTensor

/// Keys and values of the tokens a model has already seen, per layer, so each new token
/// costs one pass over the cached context instead of a recomputation of it.
/// Batch 1; capacity = the model's context.
public final class KVCache: InferenceState {
    public let capacity: Int
    public private(set) var length = 0
    let kvHeads: Int
    let headSize: Int
    private let keys: [Tensor]    // per layer [capacity, kvHeads, headSize]
    private let values: [Tensor]

    public init(_ config: ModelConfig) {
        capacity = config.context
        kvHeads = config.kvHeads
        headSize = config.headSize
        keys = (0..<config.layers).map { _ in Tensor.zeros([config.context, config.kvHeads, config.headSize]) }
        values = (0..<config.layers).map { _ in Tensor.zeros([config.context, config.kvHeads, config.headSize]) }
    }

    /// Room left before the cache is full.
    public var remaining: Int { capacity - length }

    public func reset() { length = 0 }

    public var byteCount: Int { 2 * keys.count * capacity * kvHeads * headSize * MemoryLayout<Float>.stride }

    /// Stores this layer's keys and values of `t` new tokens (shape [1, t, kvHeads, headSize])
    /// after the cached ones, and returns all keys and values so far as [1, length + t, …] views.
    func append(layer: Int, keys k: Tensor, values v: Tensor) -> (Tensor, Tensor) {
        let t = k.shape[1], row = kvHeads * headSize
        precondition(length + t <= capacity, "KVCache: \(length + t) tokens exceed the context of \(capacity)")
        (keys[layer].data + length * row).update(from: k.data, count: t * row)
        (values[layer].data + length * row).update(from: v.data, count: t * row)
        let n = length + t
        return (keys[layer].slice(axis: 0, 0..<n).reshaped([1, n, kvHeads, headSize]),
                values[layer].slice(axis: 0, 0..<n).reshaped([1, n, kvHeads, headSize]))
    }

    /// This layer's key and value storage, [capacity, kvHeads, headSize] each (for the
    /// fast decoder, which copies a batched prefill into its own layout).
    func storage(layer: Int) -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        (UnsafePointer(keys[layer].data), UnsafePointer(values[layer].data))
    }

    /// Called by the model once every layer has appended `t` tokens.
    func advance(by t: Int) { length += t }
}

extension KVCache {
    /// The state an attention model's forward pass was given: its KV cache, or nil.
    static func of(_ state: (any InferenceState)?) -> KVCache? {
        guard let state else { return nil }
        guard let cache = state as? KVCache else { preconditionFailure("model: \(type(of: state)) is not an attention model's state") }
        return cache
    }
}
