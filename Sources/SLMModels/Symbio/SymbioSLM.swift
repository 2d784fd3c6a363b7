import Foundation
import SLMTensor

extension ModelConfig.Architecture {
    /// Three sequence mixers ("organelles") fused per channel by a learned gate.
    public static let symbio = Self(rawValue: "symbio")
}

/// SymbioSLM: LLaMA's blocks with attention replaced by three organelles on the same
/// normed input, in this order: a causal convolution (`mixer.conv.weight` [d, 4]), a causal
/// Monarch mixer (`mixer.monarch.L1/L2`) and a causal long convolution as long as the
/// context (`mixer.long_conv.weight` [d, T]), fused per channel by
/// y[t,c] = Σ_o softmax_o(`mixer.gate_logits` [3, d])[o,c] · organelle_o(x)[t,c].
public final class SymbioSLM: LanguageModel, ReadsWindowInFull {
    static let organelles = 3

    struct Block {
        let inputNorm: RMSNormLayer
        let conv: Tensor
        let monarch: MonarchFactors
        let longConv: Tensor
        let gateLogits: Tensor
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
        let d = config.width, T = config.context, K = MonarchSLM.convTaps
        let std: Float = 0.02, residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        tokenEmbedding = p.make("model.embed_tokens.weight", [config.vocabSize, d], .normal(std: std))
        blocks = (0..<config.layers).map { i in
            let n = "model.layers.\(i)."
            return Block(
                inputNorm: RMSNormLayer(p, n + "input_layernorm.weight", width: d, eps: config.normEps),
                conv: p.make(n + "mixer.conv.weight", [d, K], .normal(std: 1 / Float(K).squareRoot()), decay: false),
                monarch: MonarchFactors(p, n + "mixer.monarch.", heads: config.heads, context: T),
                longConv: p.make(n + "mixer.long_conv.weight", [d, T], .normal(std: 1 / Float(T)), decay: false),
                gateLogits: p.make(n + "mixer.gate_logits", [SymbioSLM.organelles, d], .constant(0), decay: false),
                postNorm: RMSNormLayer(p, n + "post_attention_layernorm.weight", width: d, eps: config.normEps),
                mlp: SwiGLUMLP(p, n + "mlp.", width: d, hidden: config.ffnWidth, std: std, residualStd: residualStd))
        }
        finalNorm = RMSNormLayer(p, "model.norm.weight", width: d, eps: config.normEps)
        parameters = p.made
        parameterDecays = p.decays
    }

    public func forward(_ ids: [Int32], batch: Int, time: Int, start: Int, cache: KVCache?, dropoutRNG rng: inout RNG?) -> Tensor {
        let p = config.dropout, d = config.width
        var x = drop(embedding(tokenEmbedding, indices: ids, shape: [batch, time]), p, &rng)
        for b in blocks {
            let h = b.inputNorm(x)
            let weights = columnSoftmax(b.gateLogits).split([1, 1, 1], axis: 0).map { $0.reshaped([d]) }
            let mixed = weights[0] * causalConv(h, weight: b.conv) + weights[1] * b.monarch(h)
                + weights[2] * causalConv(h, weight: b.longConv)
            x = x + drop(mixed, p, &rng)
            x = x + drop(b.mlp(b.postNorm(x)), p, &rng)
        }
        return linear(finalNorm(x), weight: tokenEmbedding)
    }

    /// Each layer's mean gate entropy in nats (ln 3 for an equal mix, 0 for one organelle).
    public var gateEntropies: [Double] {
        blocks.map { b in
            let w = Autograd.noGrad { columnSoftmax(b.gateLogits) }.toArray(), d = config.width
            var total = 0.0
            for c in 0..<d {
                for o in 0..<SymbioSLM.organelles where w[o * d + c] > 0 {
                    total -= Double(w[o * d + c]) * log(Double(w[o * d + c]))
                }
            }
            return total / Double(d)
        }
    }

    static let definition = ArchitectureDefinition(
        name: .symbio,
        summary: "SymbioSLM: convolution, Monarch and long convolution fused by a learned gate",
        defaults: .llamaLike,
        validate: { c in
            var problems = MonarchFactors.problems(c)
            if !c.tiedEmbeddings || c.bias { problems.append("symbio models tie their embeddings and have no biases") }
            return problems
        },
        parameterCount: { c in
            let d = c.width, n = MonarchFactors.blockSize(c.context)
            let block = 2 * d + d * MonarchSLM.convTaps + 2 * c.heads * n * n * n + d * c.context + organelles * d + 3 * d * c.ffnWidth
            return c.vocabSize * d + c.layers * block + d
        },
        flopsPerToken: { c in
            // As MonarchSLM, plus the long convolution over the whole context (an upper bound).
            let n = MonarchFactors.blockSize(c.context)
            let mixer = 2 * Double(c.width) * Double(MonarchSLM.convTaps + 3 * n + c.context)
            return c.linearFlops(nonEmbeddingMatmulParameters: c.layers * 3 * c.width * c.ffnWidth) + Double(c.layers) * mixer
        },
        build: { SymbioSLM($0, $1) },
        huggingFaceConfig: nil)
}
