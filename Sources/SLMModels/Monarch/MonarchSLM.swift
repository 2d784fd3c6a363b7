import SLMTensor

extension ModelConfig.Architecture {
    /// Sub-quadratic: a causal convolution plus a causal Monarch mixer instead of attention.
    public static let monarch = Self(rawValue: "monarch")
}

/// MonarchSLM: LLaMA's blocks with attention replaced by
/// mixer(x) = sigmoid(gate) ⊙ (conv(x) + monarch(x)): a causal depthwise convolution of
/// `convTaps` taps and a causal Monarch mixer with `heads` heads over p² = context
/// positions. No positional encoding, no projection in the mixer, no biases, tied head.
/// Parameters: `model.layers.{i}.mixer.{conv.weight, monarch.L1, monarch.L2, gate}`.
public final class MonarchSLM: LanguageModel, ReadsWindowInFull {
    static let convTaps = 4

    struct Block {
        let inputNorm: RMSNormLayer
        let conv: Tensor
        let monarch: MonarchFactors
        let gate: Tensor
        let postNorm: RMSNormLayer
        let mlp: SwiGLUMLP
    }

    public let config: ModelConfig
    public let parameters: [(name: String, tensor: Tensor)]
    public let parameterDecays: [Bool]
    let tokenEmbedding: Tensor
    let blocks: [Block]
    let finalNorm: RMSNormLayer

    init(_ config: ModelConfig, _ p: ParameterSource) {
        self.config = config
        let d = config.width, K = MonarchSLM.convTaps
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        tokenEmbedding = p.make("model.embed_tokens.weight", [config.vocabSize, d], .normal(std: std))
        blocks = (0..<config.layers).map { i in
            let n = "model.layers.\(i)."
            return Block(
                inputNorm: RMSNormLayer(p, n + "input_layernorm.weight", width: d, eps: config.normEps),
                conv: p.make(n + "mixer.conv.weight", [d, K], .normal(std: 1 / Float(K).squareRoot()), decay: false),
                monarch: MonarchFactors(p, n + "mixer.monarch.", heads: config.heads, context: config.context),
                gate: p.make(n + "mixer.gate", [d], .constant(0)),
                postNorm: RMSNormLayer(p, n + "post_attention_layernorm.weight", width: d, eps: config.normEps),
                mlp: SwiGLUMLP(p, n + "mlp.", width: d, hidden: config.ffnWidth, std: std, residualStd: residualStd))
        }
        finalNorm = RMSNormLayer(p, "model.norm.weight", width: d, eps: config.normEps)
        parameters = p.made
        parameterDecays = p.decays
    }

    /// The mixers see only the tokens given (a state, if any, replays earlier ones: see
    /// `TokenHistory`), so `start` plays no part.
    public func forward(_ ids: [Int32], batch: Int, time: Int, start: Int, cache: KVCache?, dropoutRNG rng: inout RNG?) -> Tensor {
        let p = config.dropout
        var x = drop(embedding(tokenEmbedding, indices: ids, shape: [batch, time]), p, &rng)
        for b in blocks {
            let h = b.inputNorm(x)
            let mixed = sigmoid(b.gate) * (causalConv(h, weight: b.conv) + b.monarch(h))
            x = x + drop(mixed, p, &rng)
            x = x + drop(b.mlp(b.postNorm(x)), p, &rng)
        }
        return linear(finalNorm(x), weight: tokenEmbedding)
    }

    static let definition = ArchitectureDefinition(
        name: .monarch,
        summary: "MonarchSLM: causal convolution + causal Monarch mixer, SwiGLU, no attention",
        defaults: .llamaLike,
        validate: { c in
            var problems = MonarchFactors.problems(c)
            if !c.tiedEmbeddings || c.bias { problems.append("monarch models tie their embeddings and have no biases") }
            return problems
        },
        parameterCount: { c in
            let d = c.width, n = MonarchFactors.blockSize(c.context)
            let block = 2 * d + d * convTaps + 2 * c.heads * n * n * n + d + 3 * d * c.ffnWidth
            return c.vocabSize * d + c.layers * block + d
        },
        flopsPerToken: { c in
            // SwiGLU and the head; per channel, the convolution's taps and the Monarch
            // products (a full and a triangular block product, and the combination over blocks).
            let n = MonarchFactors.blockSize(c.context)
            let mixer = 2 * Double(c.width) * Double(convTaps + 2 * n + n)
            return c.linearFlops(nonEmbeddingMatmulParameters: c.layers * 3 * c.width * c.ffnWidth) + Double(c.layers) * mixer
        },
        build: { MonarchSLM($0, $1) },
        huggingFaceConfig: nil)
}
