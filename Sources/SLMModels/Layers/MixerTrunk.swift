import SLMTensor

/// What fills attention's place in an attention-free block: a causal map [B, T, d] → [B, T, d].
protocol SequenceMixer {
    func callAsFunction(_ x: Tensor) -> Tensor
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
                inputNorm: RMSNormLayer(p, n + "input_layernorm.weight", width: d, eps: config.normEps),
                mixer: mixer(n + "mixer."),
                postNorm: RMSNormLayer(p, n + "post_attention_layernorm.weight", width: d, eps: config.normEps),
                mlp: SwiGLUMLP(p, n + "mlp.", width: d, hidden: config.ffnWidth, std: std, residualStd: residualStd))
        }
        finalNorm = RMSNormLayer(p, "model.norm.weight", width: d, eps: config.normEps)
    }

    /// Logits [batch, time, vocab]. The mixers see only the tokens given, so there is no
    /// start position; dropout applies when `rng` is given.
    func forward(_ ids: [Int32], batch: Int, time: Int, dropout p: Double, rng: inout RNG?) -> Tensor {
        var x = drop(embedding(tokenEmbedding, indices: ids, shape: [batch, time]), p, &rng)
        for b in blocks {
            x = x + drop(b.mixer(b.inputNorm(x)), p, &rng)
            x = x + drop(b.mlp(b.postNorm(x)), p, &rng)
        }
        return linear(finalNorm(x), weight: tokenEmbedding)
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
