import SLMTensor

/// Where a model's parameters come from: fresh initialisation from a seed, or named
/// tensors loaded from a checkpoint. Models call `make` once per parameter, so the same
/// code both builds and loads them, and loading checks every name and shape.
public final class ParameterSource {
    public enum Initializer {
        case normal(std: Float)
        case constant(Float)
    }

    private enum Mode {
        case initialize(RNG)
        case load([String: Tensor])
    }

    private var mode: Mode
    private(set) var made: [(name: String, tensor: Tensor)] = []
    /// Whether each made parameter gets weight decay, in the order made.
    private(set) var decays: [Bool] = []
    private var problems: [String] = []

    public static func initialize(seed: UInt64) -> ParameterSource { ParameterSource(.initialize(RNG(seed: seed))) }
    public static func load(_ tensors: [String: Tensor]) -> ParameterSource { ParameterSource(.load(tensors)) }

    private init(_ mode: Mode) { self.mode = mode }

    /// `decay`: whether AdamW decays it; by default the matrices of linear maps and
    /// embeddings (rank 2) do, vectors do not. Convolution filters, Monarch factors and
    /// gate logits pass false.
    public func make(_ name: String, _ shape: Shape, _ initializer: Initializer, decay: Bool? = nil) -> Tensor {
        let t: Tensor
        switch mode {
        case .initialize(var rng):
            switch initializer {
            case .normal(let std): t = Tensor.randn(shape, std: std, rng: &rng)
            case .constant(let v): t = Tensor.full(shape, v)
            }
            mode = .initialize(rng)
        case .load(let tensors):
            if let loaded = tensors[name], loaded.shape == shape {
                t = loaded.detached()
            } else {
                problems.append(tensors[name].map { "\(name) has shape \($0.shape), expected \(shape)" } ?? "\(name) is missing")
                t = Tensor.zeros(shape)
            }
        }
        t.requiresGrad = true
        made.append((name, t))
        decays.append(decay ?? (shape.rank == 2))
        return t
    }

    /// Throws if loading met missing, misshapen or unexpected tensors.
    public func finish() throws(ConfigError) {
        if case .load(let tensors) = mode {
            let expected = Set(made.map(\.name))
            for name in tensors.keys.sorted() where !expected.contains(name) { problems.append("unexpected tensor \(name)") }
        }
        if !problems.isEmpty {
            throw ConfigError("weights do not match the model: " + problems.prefix(5).joined(separator: "; ")
                + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""))
        }
    }
}

/// A causal language model over token ids.
public protocol LanguageModel: AnyObject {
    var config: ModelConfig { get }
    /// Every parameter under its Hugging Face name, in a fixed order.
    var parameters: [(name: String, tensor: Tensor)] { get }
    /// Whether AdamW decays each parameter (same order).
    var parameterDecays: [Bool] { get }
    /// Logits [batch, time, vocab] for ids laid out [batch, time]. With an inference state
    /// (batch 1; one this model made), the ids continue what the state has read, and the
    /// state then includes them: attention keeps keys and values, the mixers what they
    /// need. Without one, the ids start at position 0. Dropout applies only when
    /// `dropoutRNG` is given.
    func forward(_ ids: [Int32], batch: Int, time: Int, state: (any InferenceState)?, dropoutRNG: inout RNG?) -> Tensor
    /// An empty state for reading a sequence token by token (batch 1).
    func makeInferenceState() -> any InferenceState
    /// Per-layer figures logged at every evaluation and shown by `slm eval`, by metric
    /// name (SymbioSLM: "gate_entropy"); empty for most models.
    var layerMetrics: [String: [Double]] { get }
    /// Terms of the training objective besides cross-entropy from the last forward pass,
    /// by name (a mixture of experts: "router_aux", its
    /// load-balancing loss); the trainer weights and adds them. Empty for most models.
    var auxiliaryLosses: [String: Tensor] { get }
    /// A ternary model's switch between full-precision and BitLinear forward passes; nil
    /// for full-precision models.
    var ternarySwitch: TernarySwitch? { get }
}

extension LanguageModel {
    public var layerMetrics: [String: [Double]] { [:] }
    public var auxiliaryLosses: [String: Tensor] { [:] }
    public var ternarySwitch: TernarySwitch? { nil }

    /// Logits [batch, time, vocab] for ids laid out [batch, time].
    public func logits(_ ids: [Int32], batch: Int, time: Int, dropoutRNG rng: inout RNG?) -> Tensor {
        checkInput(ids, batch: batch, time: time)
        return forward(ids, batch: batch, time: time, state: nil, dropoutRNG: &rng)
    }

    /// Logits [ids.count, vocab] for new tokens (batch 1) continuing what `state` has
    /// read; the state then includes them. For inference: call it without recording.
    public func logits(_ ids: [Int32], state: any InferenceState) -> Tensor {
        precondition(!ids.isEmpty && ids.count <= state.remaining,
                     "model: \(ids.count) new tokens exceed the \(state.remaining) places left of the context")
        var none: RNG? = nil
        return forward(ids, batch: 1, time: ids.count, state: state, dropoutRNG: &none).reshaped([ids.count, config.vocabSize])
    }

    /// Attention models keep keys and values.
    public func makeInferenceState() -> any InferenceState { KVCache(config) }

    public func logits(_ ids: [Int32], batch: Int, time: Int) -> Tensor {
        var none: RNG? = nil
        return logits(ids, batch: batch, time: time, dropoutRNG: &none)
    }

    /// Mean next-token cross-entropy of inputs predicting targets (both [batch, time]).
    public func loss(inputs: [Int32], targets: [Int32], batch: Int, time: Int, dropoutRNG rng: inout RNG?) -> Tensor {
        crossEntropy(logits(inputs, batch: batch, time: time, dropoutRNG: &rng), targets: targets)
    }

    public func loss(inputs: [Int32], targets: [Int32], batch: Int, time: Int) -> Tensor {
        var none: RNG? = nil
        return loss(inputs: inputs, targets: targets, batch: batch, time: time, dropoutRNG: &none)
    }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.tensor.count } }

    func checkInput(_ ids: [Int32], batch: Int, time: Int) {
        precondition(time >= 1 && time <= config.context, "model: \(time) tokens per sequence; the context is \(config.context)")
        precondition(ids.count == batch * time, "model: \(ids.count) ids for batch \(batch) × time \(time)")
    }
}

/// Builds the model a config describes, freshly initialised or from loaded tensors.
public func makeModel(_ config: ModelConfig, seed: UInt64) throws -> any LanguageModel {
    try config.validate()
    return try buildModel(config, .initialize(seed: seed))
}

public func makeModel(_ config: ModelConfig, weights: [String: Tensor]) throws -> any LanguageModel {
    try config.validate()
    return try buildModel(config, .load(weights))
}

private func buildModel(_ config: ModelConfig, _ source: ParameterSource) throws -> any LanguageModel {
    let model = config.architecture.definition!.build(config, source)  // validated by the callers
    try source.finish()
    return model
}

/// Dropout when training (an RNG is given), the identity otherwise.
func drop(_ x: Tensor, _ p: Double, _ rng: inout RNG?) -> Tensor {
    guard p > 0, var r = rng else { return x }
    let y = dropout(x, p: Float(p), rng: &r)
    rng = r
    return y
}
