import SLMTensor

/// A model's weights laid out for batch-1 decoding, shared by every `IncrementalDecoder` (one per
/// generation) of that model: projections as row-major [out, in] matrices (fp32 or
/// int8), Q/K/V stacked into one matrix so that a token runs one GEMV for them, and
/// small vectors (norms, embeddings) copied out of the tensors. The matrices are carved
/// from one `WeightArena`, on huge pages where the system allows.
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
        /// BitNet's SubLN before `o`.
        var attentionSubNorm: AlignedBuffer<Float>? = nil
        var mixer: (any SequenceMixer)? = nil
        let norm2: AlignedBuffer<Float>
        let norm2Bias: AlignedBuffer<Float>?
        /// The feed-forward block: GPT-2's c_fc (followed by GELU) and c_proj; or SwiGLU; or
        /// a mixture of SwiGLU experts.
        var up: DecodeMatrix? = nil
        var down: DecodeMatrix? = nil
        var swiGLU: SwiGLU? = nil
        var experts: Experts? = nil
    }

    struct SwiGLU {
        let gate, up, down: DecodeMatrix
        /// BitNet's SubLN before `down`.
        let subNorm: AlignedBuffer<Float>?

        init(_ mlp: SwiGLUMLP, _ precision: WeightPrecision, _ arena: WeightArena) {
            gate = matrix([mlp.gate], precision, arena)
            up = matrix([mlp.up], precision, arena)
            down = matrix([mlp.down], precision, arena)
            subNorm = mlp.subNorm.map { vector($0.weight) }
        }

        var weightBytes: Int { gate.weightBytes + up.weightBytes + down.weightBytes }
    }

    /// A sparse mixture of SwiGLU experts: the router stays fp32 (int8 could change which
    /// experts a token reaches), the experts take the decoder's precision.
    struct Experts {
        let router: DecodeMatrix
        let experts: [SwiGLU]
        let active: Int
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
        layers.reduce(head.weightBytes) { total, l in
            let experts = l.experts.map { $0.router.weightBytes + $0.active * $0.experts[0].weightBytes } ?? 0
            return total + (l.qkv?.weightBytes ?? 0) + (l.o?.weightBytes ?? 0) + (l.up?.weightBytes ?? 0)
                + (l.down?.weightBytes ?? 0) + (l.swiGLU?.weightBytes ?? 0) + experts
        }
    }

    init(gpt2 m: GPT2, precision: WeightPrecision) {
        let arena = WeightArena()
        config = m.config
        block = .gpt2
        self.precision = precision
        model = m
        tokenEmbedding = vector(m.tokenEmbedding)
        positionEmbedding = vector(m.positionEmbedding)
        layers = m.blocks.map { b in
            guard case .fused(let qkv) = b.attention.projections else { preconditionFailure("GPT-2 has a fused c_attn") }
            return Layer(norm1: vector(b.norm1.weight), norm1Bias: vector(b.norm1.bias),
                         qkv: matrix([qkv], precision, arena), o: matrix([b.attention.output], precision, arena),
                         norm2: vector(b.norm2.weight), norm2Bias: vector(b.norm2.bias),
                         up: matrix([b.mlp.fc], precision, arena), down: matrix([b.mlp.projection], precision, arena))
        }
        finalNorm = vector(m.finalNorm.weight)
        finalNormBias = vector(m.finalNorm.bias)
        head = DecodeMatrix(blocks: [(m.head ?? m.tokenEmbedding, nil)], inputMajor: false, precision: precision, arena: arena)
        ropeCos = nil
        ropeSin = nil
    }

    /// A BitNet model's block matrices are ternary at every precision, and `.ternary`
    /// makes its head int8; other models take `precision` throughout.
    init(llama m: Llama, precision: WeightPrecision) {
        let arena = WeightArena()
        config = m.config
        block = .llama
        self.precision = precision
        model = m
        tokenEmbedding = vector(m.tokenEmbedding)
        positionEmbedding = nil
        // (During a 16-to-1.58 run's full-precision steps the model is not ternary yet.)
        let blocks: WeightPrecision = m.ternarySwitch?.on == true ? .ternary : precision == .ternary ? .int8 : precision
        layers = m.layers.map { l in
            guard case .separate(let q, let k, let v) = l.attention.projections else { preconditionFailure("LLaMA has q/k/v_proj") }
            return Layer(norm1: vector(l.inputNorm.weight), norm1Bias: nil,
                         qkv: matrix([q, k, v], blocks, arena), o: matrix([l.attention.output], blocks, arena),
                         attentionSubNorm: l.attention.subNorm.map { vector($0.weight) },
                         norm2: vector(l.postNorm.weight), norm2Bias: nil,
                         swiGLU: l.mlp.map { SwiGLU($0, blocks, arena) },
                         experts: l.experts.map { moe in
                             Experts(router: matrix([moe.router], .fp32, arena), experts: moe.experts.map { SwiGLU($0, precision, arena) },
                                     active: moe.active)
                         })
        }
        finalNorm = vector(m.finalNorm.weight)
        finalNormBias = nil
        head = DecodeMatrix(blocks: [(m.head ?? m.tokenEmbedding, nil)], inputMajor: false,
                            precision: precision == .ternary ? .int8 : precision, arena: arena)
        // The model's own tables, so positions rotate exactly as in the training path.
        ropeCos = m.rotary.cosTable.withUnsafeBufferPointer { AlignedBuffer(copying: $0.baseAddress!, count: $0.count) }
        ropeSin = m.rotary.sinTable.withUnsafeBufferPointer { AlignedBuffer(copying: $0.baseAddress!, count: $0.count) }
    }

    /// MonarchSLM, SymbioSLM: the SwiGLU blocks and the tied head as decode matrices;
    /// each layer's mixer steps on its own (`MixerSteps.swift`).
    init<Mixer: SequenceMixer>(trunk: MixerTrunk<Mixer>, of m: any LanguageModel, precision: WeightPrecision) {
        let arena = WeightArena()
        config = m.config
        block = .mixer
        self.precision = precision
        model = m
        tokenEmbedding = vector(trunk.tokenEmbedding)
        positionEmbedding = nil
        layers = trunk.blocks.map { b in
            Layer(norm1: vector(b.inputNorm.weight), norm1Bias: nil, mixer: b.mixer,
                  norm2: vector(b.postNorm.weight), norm2Bias: nil,
                  swiGLU: SwiGLU(b.mlp, precision, arena))
        }
        finalNorm = vector(trunk.finalNorm.weight)
        finalNormBias = nil
        head = DecodeMatrix(blocks: [(trunk.tokenEmbedding, nil)], inputMajor: false, precision: precision, arena: arena)
        ropeCos = nil
        ropeSin = nil
    }
}

private func vector(_ t: Tensor) -> AlignedBuffer<Float> {
    precondition(t.dtype == .float32, "decode: weights must be fp32")
    return AlignedBuffer(copying: t.data, count: t.count)
}

/// One decode matrix from linear maps stacked along their outputs (Q, K and V in one).
private func matrix(_ maps: [Linear], _ precision: WeightPrecision, _ arena: WeightArena) -> DecodeMatrix {
    DecodeMatrix(blocks: maps.map { ($0.weight, $0.bias) }, inputMajor: maps[0].inputMajor, precision: precision, arena: arena)
}

extension LanguageModel {
    /// Weights for the fast batch-1 decoder, or nil for a model type it does not know.
    public func decodingWeights(precision: WeightPrecision = .fp32) -> DecodingWeights? {
        Architectures.named(config.architecture.rawValue)?.decodingWeights?(self, precision)
    }

    /// A fast batch-1 decoder over a snapshot of this model's weights.
    public func makeDecoder(precision: WeightPrecision = .fp32, kvCache: KVCacheFormat = .fp32) -> IncrementalDecoder? {
        decodingWeights(precision: precision).map { IncrementalDecoder($0, kvCache: kvCache) }
    }
}
