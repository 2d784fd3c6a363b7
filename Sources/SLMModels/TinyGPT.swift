import SLMTensor

/// A one-block GPT-2 style causal language model: token and learned position embeddings,
/// LayerNorm → fused QKV → causal attention → projection, LayerNorm → GELU MLP, final
/// LayerNorm and an output head. Small enough to train in seconds; used by `slm demo` and
/// the end-to-end test. Parameter names follow Hugging Face's GPT2LMHeadModel.
public final class TinyGPT {
    public struct Config: Sendable {
        public var vocabSize: Int
        public var width: Int
        public var heads: Int
        public var context: Int

        public init(vocabSize: Int, width: Int = 64, heads: Int = 4, context: Int = 32) {
            precondition(width % heads == 0, "TinyGPT: width \(width) is not divisible by \(heads) heads")
            self.vocabSize = vocabSize
            self.width = width
            self.heads = heads
            self.context = context
        }
    }

    public let config: Config
    public let parameters: [(name: String, tensor: Tensor)]
    private let p: [String: Tensor]

    public init(_ config: Config, seed: UInt64) {
        self.config = config
        var rng = RNG(seed: seed)
        let d = config.width
        func normal(_ shape: Shape, std: Float = 0.02) -> Tensor {
            Tensor.randn(shape, std: std, rng: &rng, requiresGrad: true)
        }
        func constant(_ shape: Shape, _ value: Float) -> Tensor { Tensor.full(shape, value, requiresGrad: true) }
        // GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers).
        let residualStd: Float = 0.02 / Float(2).squareRoot()
        let list: [(String, Tensor)] = [
            ("transformer.wte.weight", normal([config.vocabSize, d])),
            ("transformer.wpe.weight", normal([config.context, d], std: 0.01)),
            ("transformer.h.0.ln_1.weight", constant([d], 1)),
            ("transformer.h.0.ln_1.bias", constant([d], 0)),
            ("transformer.h.0.attn.c_attn.weight", normal([3 * d, d])),
            ("transformer.h.0.attn.c_attn.bias", constant([3 * d], 0)),
            ("transformer.h.0.attn.c_proj.weight", normal([d, d], std: residualStd)),
            ("transformer.h.0.attn.c_proj.bias", constant([d], 0)),
            ("transformer.h.0.ln_2.weight", constant([d], 1)),
            ("transformer.h.0.ln_2.bias", constant([d], 0)),
            ("transformer.h.0.mlp.c_fc.weight", normal([4 * d, d])),
            ("transformer.h.0.mlp.c_fc.bias", constant([4 * d], 0)),
            ("transformer.h.0.mlp.c_proj.weight", normal([d, 4 * d], std: residualStd)),
            ("transformer.h.0.mlp.c_proj.bias", constant([d], 0)),
            ("transformer.ln_f.weight", constant([d], 1)),
            ("transformer.ln_f.bias", constant([d], 0)),
            ("lm_head.weight", normal([config.vocabSize, d])),
        ]
        parameters = list
        p = Dictionary(uniqueKeysWithValues: list)
    }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.tensor.count } }

    /// Logits [batch, time, vocab] for token ids laid out [batch, time].
    public func logits(_ ids: [Int32], batch: Int, time: Int) -> Tensor {
        precondition(time <= config.context, "TinyGPT: \(time) tokens exceed the context of \(config.context)")
        let d = config.width, h = config.heads
        let positions = p["transformer.wpe.weight"]!.slice(axis: 0, 0..<time)
        var x = embedding(p["transformer.wte.weight"]!, indices: ids, shape: [batch, time]) + positions

        let a = layerNorm(x, weight: p["transformer.h.0.ln_1.weight"], bias: p["transformer.h.0.ln_1.bias"])
        let qkv = linear(a, weight: p["transformer.h.0.attn.c_attn.weight"]!, bias: p["transformer.h.0.attn.c_attn.bias"])
            .split([d, d, d], axis: 2)
        let heads = qkv.map { $0.reshaped([batch, time, h, d / h]) }
        let attended = attention(heads[0], heads[1], heads[2]).reshaped([batch, time, d])
        x = x + linear(attended, weight: p["transformer.h.0.attn.c_proj.weight"]!, bias: p["transformer.h.0.attn.c_proj.bias"])

        let m = layerNorm(x, weight: p["transformer.h.0.ln_2.weight"], bias: p["transformer.h.0.ln_2.bias"])
        let hidden = gelu(linear(m, weight: p["transformer.h.0.mlp.c_fc.weight"]!, bias: p["transformer.h.0.mlp.c_fc.bias"]))
        x = x + linear(hidden, weight: p["transformer.h.0.mlp.c_proj.weight"]!, bias: p["transformer.h.0.mlp.c_proj.bias"])

        let final = layerNorm(x, weight: p["transformer.ln_f.weight"], bias: p["transformer.ln_f.bias"])
        return linear(final, weight: p["lm_head.weight"]!)
    }

    /// Mean next-token cross-entropy of `inputs` predicting `targets` (both [batch, time]).
    public func loss(inputs: [Int32], targets: [Int32], batch: Int, time: Int) -> Tensor {
        crossEntropy(logits(inputs, batch: batch, time: time), targets: targets)
    }
}
