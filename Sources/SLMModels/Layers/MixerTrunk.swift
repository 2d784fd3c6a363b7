import SLMTensor

/// What fills attention's place in an attention-free block: a causal map [B, T, d] → [B, T, d],
/// and the same one position at a time for decoding.
protocol SequenceMixer {
    func callAsFunction(_ x: Tensor) -> Tensor
    /// Position t's output row, given the inputs of positions 0…t in `memory`; called in
    /// order of position (it may update what the memory derives from the inputs).
    func step(_ memory: MixerMemory, position t: Int, into out: UnsafeMutablePointer<Float>)
    /// Brings what the memory derives from its inputs up to date after a batched read of
    /// the first `count` positions.
    func catchUp(_ memory: MixerMemory, count: Int)
}

/// The body of the attention-free models (MonarchSLM, SymbioSLM): LLaMA's pre-norm blocks
/// x + mixer(RMSNorm(x)), then h + SwiGLU(RMSNorm(h)); a final RMSNorm; the output head
/// tied to the embedding; no positions, no biases. Parameters are made in checkpoint
/// order: the embedding, per layer input_layernorm, the mixer's own (under
/// `model.layers.{i}.mixer.`), post_attention_layernorm and mlp, then model.norm.
struct MixerTrunk<Mixer: SequenceMixer> {
    struct Block {
        let inputNorm: RMSNormLayer
        let mixer: Mixer
        let postNorm: RMSNormLayer
        let mlp: SwiGLUMLP
    }

    let tokenEmbedding: Tensor
    let blocks: [Block]
    let finalNorm: RMSNormLayer

    /// `mixer` makes one layer's mixer from its name prefix.
    init(_ config: ModelConfig, _ p: ParameterSource, mixer: (_ prefix: String) -> Mixer) {
        let d = config.width
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        tokenEmbedding = p.make("model.embed_tokens.weight", [config.vocabSize, d], .normal(std: std))
        blocks = (0..<config.layers).map { i in
            let n = "model.layers.\(i)."
            return Block(
                inputNorm: RMSNormLayer(p, n + "input_layernorm", width: d, eps: config.normEps),
                mixer: mixer(n + "mixer."),
                postNorm: RMSNormLayer(p, n + "post_attention_layernorm", width: d, eps: config.normEps),
                mlp: SwiGLUMLP(p, n + "mlp.", width: d, hidden: config.ffnWidth, std: std, residualStd: residualStd))
        }
        finalNorm = RMSNormLayer(p, "model.norm", width: d, eps: config.normEps)
    }

    /// Logits [batch, time, vocab]. The mixers see only the tokens given, so there is no
    /// start position; dropout applies when `rng` is given. `record` sees each layer's
    /// mixer input.
    func forward(_ ids: [Int32], batch: Int, time: Int, dropout p: Double, rng: inout RNG?,
                 record: ((_ layer: Int, _ mixerInput: Tensor) -> Void)? = nil) -> Tensor {
        var x = drop(embedding(tokenEmbedding, indices: ids, shape: [batch, time]), p, &rng)
        for (i, b) in blocks.enumerated() {
            let h = b.inputNorm(x)
            record?(i, h)
            x = x + drop(b.mixer(h), p, &rng)
            x = x + drop(b.mlp(b.postNorm(x)), p, &rng)
        }
        return linear(finalNorm(x), weight: tokenEmbedding)
    }

    /// Logits [ids.count, vocab] for tokens continuing what `state` has read (batch 1, no
    /// dropout). A first read of several tokens runs the batched forward and keeps its
    /// mixer inputs; every other token is one incremental step.
    func read(_ ids: [Int32], state: MixerState) -> Tensor {
        precondition(!ids.isEmpty && state.length + ids.count <= state.capacity,
                     "model: \(state.length) read + \(ids.count) new tokens exceed the context of \(state.capacity)")
        let d = tokenEmbedding.shape[1], vocab = tokenEmbedding.shape[0], n = ids.count
        if state.length == 0 && n > 1 {
            var none: RNG? = nil
            let logits = forward(ids, batch: 1, time: n, dropout: 0, rng: &none) { layer, h in
                let memory = state.memory(layer: layer)
                memory.inputs.update(from: h.data, count: n * d)
                memory.commit(0..<n)
            }
            for (i, b) in blocks.enumerated() { b.mixer.catchUp(state.memory(layer: i), count: n) }
            state.advance(by: n)
            return logits.reshaped([n, vocab])
        }
        let out = Tensor(zeros: [n, vocab])
        for (row, id) in ids.enumerated() {
            let logits = step(id, state: state)
            withExtendedLifetime(logits) { (out.data + row * vocab).update(from: logits.data, count: vocab) }
        }
        return out
    }

    /// One token at position state.length: O(√T·d) per Monarch mixer, O(t·d) per long convolution.
    private func step(_ id: Int32, state: MixerState) -> Tensor {
        let t = state.length, d = tokenEmbedding.shape[1]
        var x = embedding(tokenEmbedding, indices: [id], shape: [1, 1])
        for (i, b) in blocks.enumerated() {
            let memory = state.memory(layer: i)
            let h = b.inputNorm(x)
            withExtendedLifetime(h) { memory.input(t).update(from: h.data, count: d) }
            memory.commit(t..<(t + 1))
            let mixed = Tensor(zeros: [1, 1, d])
            b.mixer.step(memory, position: t, into: mixed.data)
            x = x + mixed
            x = x + b.mlp(b.postNorm(x))
        }
        state.advance(by: 1)
        return linear(finalNorm(x), weight: tokenEmbedding)
    }

    /// What the trunk itself requires of a config.
    static func problems(_ c: ModelConfig) -> [String] {
        !c.tiedEmbeddings || c.bias ? ["\(c.architecture) models tie their embeddings and have no biases"] : []
    }

    /// The trunk's parameters plus `mixer` per layer.
    static func parameterCount(_ c: ModelConfig, mixer: Int) -> Int {
        c.vocabSize * c.width + c.layers * (2 * c.width + mixer + 3 * c.width * c.ffnWidth) + c.width
    }

    /// SwiGLU and the head, plus `mixer` FLOPs per token and layer.
    static func flopsPerToken(_ c: ModelConfig, mixer: Double) -> Double {
        c.linearFlops(nonEmbeddingMatmulParameters: c.layers * 3 * c.width * c.ffnWidth) + Double(c.layers) * mixer
    }
}

/// A model built on a `MixerTrunk`: its inference state is a `MixerState`.
protocol MixerTrunkModel: LanguageModel {
    associatedtype Mixer: SequenceMixer
    var trunk: MixerTrunk<Mixer> { get }
}

extension MixerTrunkModel {
    /// With a `MixerState`, the ids continue what it has read (batch 1).
    public func forward(_ ids: [Int32], batch: Int, time: Int, state: (any InferenceState)?, dropoutRNG rng: inout RNG?) -> Tensor {
        guard let state else { return trunk.forward(ids, batch: batch, time: time, dropout: config.dropout, rng: &rng) }
        guard let mixers = state as? MixerState, batch == 1 else {
            preconditionFailure("model: \(type(of: state)) with batch \(batch) is not this model's state")
        }
        return trunk.read(ids, state: mixers).reshaped([1, time, config.vocabSize])
    }

    public func makeInferenceState() -> any InferenceState { MixerState(config) }
}
