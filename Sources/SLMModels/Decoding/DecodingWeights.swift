import SLMTensor

/// A model's weights laid out for batch-1 decoding, shared by every `IncrementalDecoder` (one per
/// generation) of that model: projections as row-major [out, in] matrices (fp32 or
/// int8), Q/K/V stacked into one matrix so that a token runs one GEMV for them, and
/// small vectors (norms, embeddings) copied out of the tensors.
///
/// A snapshot: built from the model's tensors when made, immutable afterwards. Training
/// the model further does not change it; make new weights for that.
public final class DecodingWeights {
    public let config: ModelConfig
    public let precision: WeightPrecision
    /// Which block the decoder steps: GPT-2's (LayerNorm, learned positions, GELU), LLaMA's,
    /// or an attention-free `MixerTrunk`'s (RMSNorm, a sequence mixer, SwiGLU).
    enum Block { case gpt2, llama, mixer }
    let block: Block
    /// The model itself, for the batched (GEMM) prefill of long fp32 prompts.
    let model: any LanguageModel

    struct Layer {
        let norm1: AlignedBuffer<Float>
        let norm1Bias: AlignedBuffer<Float>?
        /// Attention's projections, or else the mixer that replaces attention (it steps on
        /// the model's own fp32 tensors).
        var qkv: DecodeMatrix? = nil
        var o: DecodeMatrix? = nil
        var mixer: (any SequenceMixer)? = nil
        let norm2: AlignedBuffer<Float>
        let norm2Bias: AlignedBuffer<Float>?
        /// GPT-2: c_fc (followed by GELU); LLaMA: up_proj (SwiGLU with `gate`).
        let up: DecodeMatrix
        let gate: DecodeMatrix?
        let down: DecodeMatrix
    }

    let tokenEmbedding: AlignedBuffer<Float>        // [vocab, width], fp32: one row per token
    let positionEmbedding: AlignedBuffer<Float>?    // GPT-2: [context, width]
    let layers: [Layer]
    let finalNorm: AlignedBuffer<Float>
    let finalNormBias: AlignedBuffer<Float>?
    let head: DecodeMatrix
    /// LLaMA: the model's RoPE tables [context, headSize / 2].
    let ropeCos: AlignedBuffer<Float>?
    let ropeSin: AlignedBuffer<Float>?

    /// Bytes of weights one token reads (the memory traffic that bounds decode speed).
    public var bytesPerToken: Int {
        layers.reduce(head.weightBytes) { $0 + ($1.qkv?.weightBytes ?? 0) + ($1.o?.weightBytes ?? 0) + $1.up.weightBytes
            + ($1.gate?.weightBytes ?? 0) + $1.down.weightBytes }
    }

    init(gpt2 m: GPT2, precision: WeightPrecision) {
        config = m.config
        block = .gpt2
        self.precision = precision
        model = m
        tokenEmbedding = vector(m.tokenEmbedding)
        positionEmbedding = vector(m.positionEmbedding)
        layers = m.blocks.map { b in
            Layer(norm1: vector(b.ln1Weight), norm1Bias: optionalVector(b.ln1Bias),
                  qkv: DecodeMatrix(blocks: [(b.attnWeight, b.attnBias)], inputMajor: true, precision: precision),
                  o: DecodeMatrix(blocks: [(b.attnProjWeight, b.attnProjBias)], inputMajor: true, precision: precision),
                  norm2: vector(b.ln2Weight), norm2Bias: optionalVector(b.ln2Bias),
                  up: DecodeMatrix(blocks: [(b.fcWeight, b.fcBias)], inputMajor: true, precision: precision),
                  gate: nil,
                  down: DecodeMatrix(blocks: [(b.fcProjWeight, b.fcProjBias)], inputMajor: true, precision: precision))
        }
        finalNorm = vector(m.finalNormWeight)
        finalNormBias = optionalVector(m.finalNormBias)
        head = DecodeMatrix(blocks: [(m.head ?? m.tokenEmbedding, nil)], inputMajor: false, precision: precision)
        ropeCos = nil
        ropeSin = nil
    }

    init(llama m: Llama, precision: WeightPrecision) {
        config = m.config
        block = .llama
        self.precision = precision
        model = m
        tokenEmbedding = vector(m.tokenEmbedding)
        positionEmbedding = nil
        layers = m.layers.map { l in
            Layer(norm1: vector(l.inputNorm), norm1Bias: nil,
                  qkv: DecodeMatrix(blocks: [(l.q, l.qBias), (l.k, l.kBias), (l.v, l.vBias)], inputMajor: false, precision: precision),
                  o: DecodeMatrix(blocks: [(l.o, l.oBias)], inputMajor: false, precision: precision),
                  norm2: vector(l.postNorm), norm2Bias: nil,
                  up: DecodeMatrix(blocks: [(l.mlp!.up.weight, nil)], inputMajor: false, precision: precision),
                  gate: DecodeMatrix(blocks: [(l.mlp!.gate.weight, nil)], inputMajor: false, precision: precision),
                  down: DecodeMatrix(blocks: [(l.mlp!.down.weight, nil)], inputMajor: false, precision: precision))
        }
        finalNorm = vector(m.finalNorm)
        finalNormBias = nil
        head = DecodeMatrix(blocks: [(m.head ?? m.tokenEmbedding, nil)], inputMajor: false, precision: precision)
        // The model's own tables, so positions rotate exactly as in the training path.
        ropeCos = m.rotary.cosTable.withUnsafeBufferPointer { AlignedBuffer(copying: $0.baseAddress!, count: $0.count) }
        ropeSin = m.rotary.sinTable.withUnsafeBufferPointer { AlignedBuffer(copying: $0.baseAddress!, count: $0.count) }
    }

    /// MonarchSLM, SymbioSLM: the SwiGLU blocks and the tied head as decode matrices;
    /// each layer's mixer steps on its own (`MixerSteps.swift`).
    init<Mixer: SequenceMixer>(trunk: MixerTrunk<Mixer>, of m: any LanguageModel, precision: WeightPrecision) {
        config = m.config
        block = .mixer
        self.precision = precision
        model = m
        tokenEmbedding = vector(trunk.tokenEmbedding)
        positionEmbedding = nil
        layers = trunk.blocks.map { b in
            Layer(norm1: vector(b.inputNorm.weight), norm1Bias: nil, mixer: b.mixer,
                  norm2: vector(b.postNorm.weight), norm2Bias: nil,
                  up: DecodeMatrix(blocks: [(b.mlp.up.weight, nil)], inputMajor: false, precision: precision),
                  gate: DecodeMatrix(blocks: [(b.mlp.gate.weight, nil)], inputMajor: false, precision: precision),
                  down: DecodeMatrix(blocks: [(b.mlp.down.weight, nil)], inputMajor: false, precision: precision))
        }
        finalNorm = vector(trunk.finalNorm.weight)
        finalNormBias = nil
        head = DecodeMatrix(blocks: [(trunk.tokenEmbedding, nil)], inputMajor: false, precision: precision)
        ropeCos = nil
        ropeSin = nil
    }
}

private func vector(_ t: Tensor) -> AlignedBuffer<Float> {
    precondition(t.dtype == .float32, "decode: weights must be fp32")
    return AlignedBuffer(copying: t.data, count: t.count)
}

private func optionalVector(_ t: Tensor?) -> AlignedBuffer<Float>? { t.map { vector($0) } }

extension LanguageModel {
    /// Weights for the fast batch-1 decoder, or nil for a model type it does not know.
    public func decodingWeights(precision: WeightPrecision = .fp32) -> DecodingWeights? {
        Architectures.named(config.architecture.rawValue)?.decodingWeights?(self, precision)
    }

    /// A fast batch-1 decoder over a snapshot of this model's weights.
    public func makeDecoder(precision: WeightPrecision = .fp32) -> IncrementalDecoder? {
        decodingWeights(precision: precision).map { IncrementalDecoder($0) }
    }
}
