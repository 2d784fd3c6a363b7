import SLMTensor

/// GPT-2: token and learned position embeddings; pre-norm blocks of LayerNorm → fused
/// QKV → causal attention → projection and LayerNorm → GELU MLP; final LayerNorm; output
/// head (tied to the token embedding if the config says so).
///
/// Weights are named and laid out as Hugging Face's GPT2LMHeadModel stores them: the
/// projections are Conv1D weights [in, out], used through `linear(inputMajor: true)`.
public final class GPT2: LanguageModel {
    struct Block {
        let norm1: LayerNormLayer
        let attention: CausalSelfAttention
        let norm2: LayerNormLayer
        let mlp: GPT2MLP
    }

    public let config: ModelConfig
    public let parameters: [(name: String, tensor: Tensor)]
    public let parameterDecays: [Bool]
    let tokenEmbedding, positionEmbedding: Tensor
    let finalNorm: LayerNormLayer
    let head: Tensor?
    let blocks: [Block]

    init(_ config: ModelConfig, _ p: ParameterSource) {
        self.config = config
        let d = config.width, eps = config.normEps
        // GPT-2 initialisation: N(0, 0.02); projections into the residual stream scaled
        // by 1/sqrt(2·layers) so the stream's variance does not grow with depth.
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        tokenEmbedding = p.make("transformer.wte.weight", [config.vocabSize, d], .normal(std: std))
        positionEmbedding = p.make("transformer.wpe.weight", [config.context, d], .normal(std: 0.01))
        blocks = (0..<config.layers).map { i in
            let n = "transformer.h.\(i)."
            return Block(
                norm1: LayerNormLayer(p, n + "ln_1", width: d, eps: eps),
                attention: CausalSelfAttention(
                    projections: .fused(Linear(p, n + "attn.c_attn", inputs: d, outputs: 3 * d, std: std, bias: config.bias, inputMajor: true)),
                    output: Linear(p, n + "attn.c_proj", inputs: d, outputs: d, std: residualStd, bias: config.bias, inputMajor: true),
                    heads: config.heads, kvHeads: config.heads, headSize: config.headSize, rotary: nil),
                norm2: LayerNormLayer(p, n + "ln_2", width: d, eps: eps),
                mlp: GPT2MLP(p, n + "mlp.", width: d, hidden: config.ffnWidth, bias: config.bias, std: std, residualStd: residualStd))
        }
        finalNorm = LayerNormLayer(p, "transformer.ln_f", width: d, eps: eps)
        head = config.tiedEmbeddings ? nil : p.make("lm_head.weight", [config.vocabSize, d], .normal(std: std))
        parameters = p.made
        parameterDecays = p.decays
    }

    /// With a KV cache, positions continue after the cached tokens, whose keys and values
    /// come from it.
    public func forward(_ ids: [Int32], batch: Int, time: Int, state: (any InferenceState)?, dropoutRNG rng: inout RNG?) -> Tensor {
        let cache = KVCache.of(state), start = cache?.length ?? 0
        defer { cache?.advance(by: time) }
        let p = config.dropout
        var x = embedding(tokenEmbedding, indices: ids, shape: [batch, time]) + positionEmbedding.slice(axis: 0, start..<(start + time))
        x = drop(x, p, &rng)
        for (i, b) in blocks.enumerated() {
            x = x + drop(b.attention(b.norm1(x), layer: i, start: start, cache: cache), p, &rng)
            x = x + drop(b.mlp(b.norm2(x)), p, &rng)
        }
        return linear(finalNorm(x), weight: head ?? tokenEmbedding)
    }
}

extension ModelConfig.Architecture {
    /// Learned positions, LayerNorm with bias, GELU MLP, fused QKV, separate head.
    public static let gpt2 = Self(rawValue: "gpt2")
}

extension GPT2 {
    static let definition = ArchitectureDefinition(
        name: .gpt2,
        defaults: .init(ffnIsFourTimesWidth: true, normEps: 1e-5, bias: true, tiedEmbeddings: false),
        validate: { c in c.kvHeads != c.heads ? ["gpt2 uses one key/value head per head (kv_heads = heads)"] : [] },
        parameterCount: { c in
            let d = c.width, f = c.ffnWidth, b = c.bias ? 1 : 0
            let block = 2 * 2 * d + (d * 3 * d + 3 * d * b) + (d * d + d * b) + (d * f + f * b) + (f * d + d * b)
            return c.vocabSize * d + c.context * d + c.layers * block + 2 * d + (c.tiedEmbeddings ? 0 : c.vocabSize * d)
        },
        flopsPerToken: { c in
            // The head's product is counted once below, tied or not.
            let head = c.tiedEmbeddings ? 0 : c.vocabSize * c.width
            let nonEmbedding = c.parameterCount - c.vocabSize * c.width - c.context * c.width - head
            return 2 * Double(nonEmbedding + c.vocabSize * c.width) + 2 * 2 * Double(c.layers * c.context * c.width)
        },
        build: { GPT2($0, $1) },
        decodingWeights: { DecodingWeights(gpt2: $0 as! GPT2, precision: $1) },
        huggingFaceConfig: { c in
            guard c.bias else { throw ConfigError("GPT-2 checkpoints in Hugging Face's layout always have biases; this model has none") }
            return [
                "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocabSize,
                "n_positions": c.context, "n_ctx": c.context, "n_embd": c.width, "n_layer": c.layers, "n_head": c.heads,
                "n_inner": c.ffnWidth, "activation_function": "gelu_new", "layer_norm_epsilon": c.normEps,
                "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": 0.0, "initializer_range": 0.02,
                "tie_word_embeddings": c.tiedEmbeddings, "torch_dtype": "float32", "use_cache": true,
            ]
        },
        ggufLayout: { try ggufLayout($0) },
        huggingFaceImport: huggingFaceImport)

    /// GPT2LMHeadModel's config.json. Dropout is not carried (inference ignores it; a
    /// fine-tuning run sets its own).
    static let huggingFaceImport = HuggingFaceImport(
        modelType: "gpt2", causalLMClass: "GPT2LMHeadModel",
        config: { hf throws(ConfigError) in
            let activation = try hf.string("activation_function", default: "gelu_new")
            guard ["gelu_new", "gelu_pytorch_tanh"].contains(activation) else {
                throw hf.fail("activation_function \(activation) is not supported: swift-slm's GPT-2 uses GELU's tanh approximation (gelu_new)")
            }
            for (key, why) in [("scale_attn_by_inverse_layer_idx", "attention scores scaled per layer"),
                               ("add_cross_attention", "cross-attention needs an encoder")] where try hf.bool(key, default: false) {
                throw hf.fail("\(key) is not supported (\(why))")
            }
            guard try hf.bool("scale_attn_weights", default: true) else { throw hf.fail("scale_attn_weights = false is not supported") }
            let width = try hf.int("n_embd")
            return ModelConfig(architecture: .gpt2, vocabSize: try hf.int("vocab_size"), layers: try hf.int("n_layer"),
                               heads: try hf.int("n_head"), width: width, context: try hf.int("n_positions"),
                               ffnWidth: try hf.int("n_inner", default: 4 * width),
                               normEps: try hf.double("layer_norm_epsilon", default: 1e-5), bias: true,
                               tiedEmbeddings: try hf.bool("tie_word_embeddings", default: true))
        },
        tensorName: { key, config in
            // Causal-mask buffers of older versions; a tied head's copy of the embedding.
            if key.hasSuffix(".attn.bias") || key.hasSuffix(".attn.masked_bias") { return nil }
            if key == "lm_head.weight" { return config.tiedEmbeddings ? nil : key }
            // The original checkpoints name the trunk's tensors without "transformer.".
            return key.hasPrefix("transformer.") ? key : "transformer." + key
        })
}
