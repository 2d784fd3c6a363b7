import SLMTensor

/// LLaMA: token embedding; pre-norm blocks of RMSNorm → Q/K/V projections → RoPE →
/// grouped-query causal attention → output projection and RMSNorm → SwiGLU (gate, up,
/// down); final RMSNorm; output head tied to the embedding by default. No biases unless
/// the config asks for them. Names follow Hugging Face's LlamaForCausalLM. With
/// `config.experts`, a sparse mixture of SwiGLU experts replaces the feed-forward block
/// (Mixtral's layout under `mlp.`), and training adds its load-balancing loss.
public final class Llama: LanguageModel {
    struct Layer {
        let inputNorm: RMSNormLayer
        let attention: CausalSelfAttention
        let postNorm: RMSNormLayer
        /// The dense SwiGLU block, or else the mixture of experts.
        let mlp: SwiGLUMLP?
        let experts: MixtureOfExperts?
    }

    public let config: ModelConfig
    public let parameters: [(name: String, tensor: Tensor)]
    public let parameterDecays: [Bool]
    let tokenEmbedding: Tensor
    let finalNorm: RMSNormLayer
    let head: Tensor?
    let layers: [Layer]
    let rotary: RotaryEmbedding
    /// The mean over layers of the experts' load-balancing loss from the last forward
    /// pass (a model runs on one thread at a time); see `auxiliaryLosses`.
    private var balance: Tensor?
    public let ternarySwitch: TernarySwitch?

    init(_ config: ModelConfig, _ p: ParameterSource) {
        self.config = config
        let d = config.width, kv = config.kvHeads * config.headSize, f = config.ffnWidth, eps = config.normEps
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        let dense = config.experts == nil
        let rotary = RotaryEmbedding(headDim: config.headSize, maxPositions: config.context, theta: config.ropeTheta)
        // BitNet: the blocks' linear maps are BitLinears; the embedding and head stay fp32.
        let ternary = config.quantization == .ternary ? TernarySwitch(on: true) : nil
        let subNormEps = config.subNorm == true ? eps : nil
        tokenEmbedding = p.make("model.embed_tokens.weight", [config.vocabSize, d], .normal(std: std))
        layers = (0..<config.layers).map { i in
            let n = "model.layers.\(i)."
            let a = n + "self_attn."
            return Layer(
                inputNorm: RMSNormLayer(p, n + "input_layernorm", width: d, eps: eps),
                attention: CausalSelfAttention(
                    projections: .separate(q: Linear(p, a + "q_proj", inputs: d, outputs: d, std: std, bias: config.bias, ternary: ternary),
                                           k: Linear(p, a + "k_proj", inputs: d, outputs: kv, std: std, bias: config.bias, ternary: ternary),
                                           v: Linear(p, a + "v_proj", inputs: d, outputs: kv, std: std, bias: config.bias, ternary: ternary)),
                    output: Linear(p, a + "o_proj", inputs: d, outputs: d, std: residualStd, bias: config.bias, ternary: ternary),
                    heads: config.heads, kvHeads: config.kvHeads, headSize: config.headSize, rotary: rotary,
                    subNorm: subNormEps.map { RMSNormLayer(p, a + "attn_sub_norm", width: d, eps: $0) }),
                postNorm: RMSNormLayer(p, n + "post_attention_layernorm", width: d, eps: eps),
                mlp: dense ? SwiGLUMLP(p, n + "mlp.", width: d, hidden: f, std: std, residualStd: residualStd,
                                       ternary: ternary, subNormEps: subNormEps) : nil,
                experts: config.experts.map { e in
                    MixtureOfExperts(p, n + "mlp.", width: d, hidden: f, experts: e, active: config.expertsActive ?? 1,
                                     std: std, residualStd: residualStd)
                })
        }
        finalNorm = RMSNormLayer(p, "model.norm", width: d, eps: eps)
        head = config.tiedEmbeddings ? nil : p.make("lm_head.weight", [config.vocabSize, d], .normal(std: std))
        parameters = p.made
        parameterDecays = p.decays
        self.rotary = rotary
        ternarySwitch = ternary
    }

    /// With a KV cache, positions (for RoPE) continue after the cached tokens, whose keys
    /// and values come from it.
    public func forward(_ ids: [Int32], batch: Int, time: Int, state: (any InferenceState)?, dropoutRNG rng: inout RNG?) -> Tensor {
        let cache = KVCache.of(state), start = cache?.length ?? 0
        defer { cache?.advance(by: time) }
        let p = config.dropout
        var x = drop(embedding(tokenEmbedding, indices: ids, shape: [batch, time]), p, &rng)
        var balances: [Tensor] = []
        for (i, l) in layers.enumerated() {
            x = x + drop(l.attention(l.inputNorm(x), layer: i, start: start, cache: cache), p, &rng)
            let m = l.postNorm(x)
            if let experts = l.experts {
                let (y, balance) = experts(m)
                balances.append(balance)
                x = x + drop(y, p, &rng)
            } else {
                x = x + drop(l.mlp!(m), p, &rng)
            }
        }
        if !balances.isEmpty { balance = balances.dropFirst().reduce(balances[0], +) * (1 / Float(balances.count)) }
        return linear(finalNorm(x), weight: head ?? tokenEmbedding)
    }
}

extension Llama {
    public var auxiliaryLosses: [String: Tensor] { balance.map { ["router_aux": $0] } ?? [:] }
}

extension ModelConfig.Architecture {
    /// RMSNorm, RoPE, grouped-query attention, SwiGLU, no bias, tied embeddings.
    public static let llama = Self(rawValue: "llama")
}

extension Llama {
    static let definition = ArchitectureDefinition(
        name: .llama,
        defaults: .llamaLike,
        validate: { c in
            var problems: [String] = []
            if c.kvHeads < 1 || c.heads % max(c.kvHeads, 1) != 0 { problems.append("heads \(c.heads) must be a multiple of kv_heads \(c.kvHeads)") }
            if c.headSize % 2 != 0 { problems.append("head size \(c.headSize) must be even for RoPE") }
            return problems
        },
        parameterCount: { c in
            let d = c.width, kv = c.kvHeads * c.headSize
            let feedForward = c.experts.map { e in e * (3 * d * c.ffnWidth + d) } ?? 3 * d * c.ffnWidth
            let subNorms = c.subNorm == true ? d + c.ffnWidth : 0
            let block = 2 * d + d * d + 2 * d * kv + d * d + feedForward + subNorms
            return c.vocabSize * d + c.layers * block + d + (c.tiedEmbeddings ? 0 : c.vocabSize * d)
        },
        flopsPerToken: { c in
            // Active parameters only: a token runs through experts_active experts.
            // The head's product is counted once below, tied or not.
            let head = c.tiedEmbeddings ? 0 : c.vocabSize * c.width
            let nonEmbedding = c.activeParameterCount - c.vocabSize * c.width - head
            return 2 * Double(nonEmbedding + c.vocabSize * c.width) + 2 * 2 * Double(c.layers * c.context * c.width)
        },
        build: { Llama($0, $1) },
        decodingWeights: { m, precision in DecodingWeights(llama: m as! Llama, precision: precision) },
        hasExperts: true,
        hasTernary: true,
        huggingFaceConfig: { c in
            if c.experts != nil {
                throw ConfigError("exporting a mixture of experts to transformers is not supported; the checkpoint's safetensors use Mixtral-style names under mlp.gate and mlp.experts.{e}")
            }
            if c.quantization != nil || c.subNorm == true {
                throw ConfigError("exporting a BitNet model (ternary or SubLN) to transformers is not supported: LlamaForCausalLM would run it in full precision")
            }
            return [
                "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c.vocabSize,
                "hidden_size": c.width, "intermediate_size": c.ffnWidth, "num_hidden_layers": c.layers,
                "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "head_dim": c.headSize,
                "max_position_embeddings": c.context, "rms_norm_eps": c.normEps, "rope_theta": c.ropeTheta,
                "hidden_act": "silu", "attention_bias": c.bias, "mlp_bias": false, "attention_dropout": 0.0,
                "tie_word_embeddings": c.tiedEmbeddings, "torch_dtype": "float32", "use_cache": true,
                "initializer_range": 0.02,
            ]
        },
        ggufLayout: { try ggufLayout($0) },
        huggingFaceImport: huggingFaceImport)

    static func isDefaultRoPE(_ o: [String: HuggingFaceConfig.Value]) -> Bool {
        for key in ["rope_type", "type"] { if case .string(let t)? = o[key], t != "default" { return false } }
        return true
    }

    /// LlamaForCausalLM's config.json.
    static let huggingFaceImport = HuggingFaceImport(
        modelType: "llama", causalLMClass: "LlamaForCausalLM",
        config: { hf throws(ConfigError) in
            let activation = try hf.string("hidden_act", default: "silu")
            guard activation == "silu" else { throw hf.fail("hidden_act \(activation) is not supported: swift-slm's SwiGLU uses silu") }
            // RoPE: rope_theta and rope_scaling up to transformers 4, rope_parameters from 5 on.
            let scaled = "scaled RoPE (linear, dynamic, YaRN, llama3) is not implemented; positions would be encoded differently"
            try hf.refuse("rope_scaling", unless: { if case .object(let o) = $0 { return Llama.isDefaultRoPE(o) } else { return false } }, because: scaled)
            var ropeTheta = try hf.double("rope_theta", default: 10_000)
            if let rope = try hf.object("rope_parameters") {
                guard try rope.string("rope_type", default: "default") == "default" else { throw rope.fail("rope_type \(try rope.string("rope_type")): \(scaled)") }
                ropeTheta = try rope.double("rope_theta", default: ropeTheta)
            }
            guard try !hf.bool("mlp_bias", default: false) else { throw hf.fail("mlp_bias = true is not supported (the SwiGLU projections have no bias)") }
            let width = try hf.int("hidden_size"), heads = try hf.int("num_attention_heads")
            let headDim = try hf.int("head_dim", default: heads > 0 ? width / heads : 0)
            if heads > 0, headDim != width / heads {
                throw hf.fail("head_dim \(headDim) is not hidden_size / num_attention_heads (\(width / heads)); not supported")
            }
            return ModelConfig(architecture: .llama, vocabSize: try hf.int("vocab_size"), layers: try hf.int("num_hidden_layers"),
                               heads: heads, kvHeads: try hf.int("num_key_value_heads", default: heads), width: width,
                               context: try hf.int("max_position_embeddings"), ffnWidth: try hf.int("intermediate_size"),
                               normEps: try hf.double("rms_norm_eps", default: 1e-6), ropeTheta: ropeTheta,
                               bias: try hf.bool("attention_bias", default: false),
                               tiedEmbeddings: try hf.bool("tie_word_embeddings", default: false))
        },
        tensorName: { key, config in
            // Older checkpoints store RoPE's frequencies; a tied head's copy of the embedding.
            if key.hasSuffix(".rotary_emb.inv_freq") { return nil }
            if key == "lm_head.weight" { return config.tiedEmbeddings ? nil : key }
            return key
        })
}
