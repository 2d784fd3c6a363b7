import SLMTensor

/// GPT-2: token and learned position embeddings; pre-norm blocks of LayerNorm → fused
/// QKV → causal attention → projection and LayerNorm → GELU MLP; final LayerNorm; output
/// head (tied to the token embedding if the config says so).
///
/// Weights are named and laid out as Hugging Face's GPT2LMHeadModel stores them: the
/// projections are Conv1D weights [in, out], used through `linear(inputMajor: true)`.
public final class GPT2: LanguageModel {
    struct Block {
        let ln1Weight, ln1Bias, attnWeight, attnProjWeight, ln2Weight, ln2Bias, fcWeight, fcProjWeight: Tensor
        let attnBias, attnProjBias, fcBias, fcProjBias: Tensor?
    }

    public let config: ModelConfig
    public let parameters: [(name: String, tensor: Tensor)]
    public let parameterDecays: [Bool]
    let tokenEmbedding, positionEmbedding, finalNormWeight, finalNormBias: Tensor
    let head: Tensor?
    let blocks: [Block]

    init(_ config: ModelConfig, _ p: ParameterSource) {
        self.config = config
        let d = config.width, f = config.ffnWidth
        // GPT-2 initialisation: N(0, 0.02); projections into the residual stream scaled
        // by 1/sqrt(2·layers) so the stream's variance does not grow with depth.
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        func bias(_ name: String, _ n: Int) -> Tensor? { config.bias ? p.make(name, [n], .constant(0)) : nil }
        tokenEmbedding = p.make("transformer.wte.weight", [config.vocabSize, d], .normal(std: std))
        positionEmbedding = p.make("transformer.wpe.weight", [config.context, d], .normal(std: 0.01))
        blocks = (0..<config.layers).map { i in
            let n = "transformer.h.\(i)."
            return Block(
                ln1Weight: p.make(n + "ln_1.weight", [d], .constant(1)),
                ln1Bias: p.make(n + "ln_1.bias", [d], .constant(0)),
                attnWeight: p.make(n + "attn.c_attn.weight", [d, 3 * d], .normal(std: std)),
                attnProjWeight: p.make(n + "attn.c_proj.weight", [d, d], .normal(std: residualStd)),
                ln2Weight: p.make(n + "ln_2.weight", [d], .constant(1)),
                ln2Bias: p.make(n + "ln_2.bias", [d], .constant(0)),
                fcWeight: p.make(n + "mlp.c_fc.weight", [d, f], .normal(std: std)),
                fcProjWeight: p.make(n + "mlp.c_proj.weight", [f, d], .normal(std: residualStd)),
                attnBias: bias(n + "attn.c_attn.bias", 3 * d),
                attnProjBias: bias(n + "attn.c_proj.bias", d),
                fcBias: bias(n + "mlp.c_fc.bias", f),
                fcProjBias: bias(n + "mlp.c_proj.bias", d))
        }
        finalNormWeight = p.make("transformer.ln_f.weight", [d], .constant(1))
        finalNormBias = p.make("transformer.ln_f.bias", [d], .constant(0))
        head = config.tiedEmbeddings ? nil : p.make("lm_head.weight", [config.vocabSize, d], .normal(std: std))
        parameters = p.made
        parameterDecays = p.decays
    }

    /// Positions start at `start`; with a cache, keys and values of earlier tokens come from it.
    public func forward(_ ids: [Int32], batch: Int, time: Int, start: Int, cache: KVCache?, dropoutRNG rng: inout RNG?) -> Tensor {
        let d = config.width, h = config.heads, eps = Float(config.normEps), p = config.dropout
        var x = embedding(tokenEmbedding, indices: ids, shape: [batch, time]) + positionEmbedding.slice(axis: 0, start..<(start + time))
        x = drop(x, p, &rng)
        for (i, b) in blocks.enumerated() {
            let qkv = linear(layerNorm(x, weight: b.ln1Weight, bias: b.ln1Bias, eps: eps), weight: b.attnWeight,
                             bias: b.attnBias, inputMajor: true)
            let attended: Tensor
            if let cache {
                let parts = qkv.split([d, d, d], axis: 2).map { $0.reshaped([batch, time, h, d / h]) }
                let (keys, values) = cache.append(layer: i, keys: parts[1], values: parts[2])
                attended = attention(parts[0], keys, values).reshaped([batch, time, d])
            } else {  // training and full recomputation read q, k and v in place
                attended = attention(packedQKV: qkv, heads: h).reshaped([batch, time, d])
            }
            x = x + drop(linear(attended, weight: b.attnProjWeight, bias: b.attnProjBias, inputMajor: true), p, &rng)
            let m = gelu(linear(layerNorm(x, weight: b.ln2Weight, bias: b.ln2Bias, eps: eps), weight: b.fcWeight,
                                bias: b.fcBias, inputMajor: true))
            x = x + drop(linear(m, weight: b.fcProjWeight, bias: b.fcProjBias, inputMajor: true), p, &rng)
        }
        x = layerNorm(x, weight: finalNormWeight, bias: finalNormBias, eps: eps)
        return linear(x, weight: head ?? tokenEmbedding)
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
            let nonEmbedding = c.parameterCount - c.vocabSize * c.width - c.context * c.width
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
        })
}
