import SLMTensor

// Small layers that the newer model files compose. Each makes its parameters through a
// ParameterSource under the name it is given, so building and loading share one path.

/// RMSNorm with a learned scale (initialised to 1), `name`.weight.
struct RMSNormLayer {
    let weight: Tensor
    let eps: Float

    init(_ p: ParameterSource, _ name: String, width: Int, eps: Double) {
        weight = p.make(name + ".weight", [width], .constant(1))
        self.eps = Float(eps)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { rmsNorm(x, weight: weight, eps: eps) }
}

/// LayerNorm with a learned scale (1) and shift (0), `name`.weight and `name`.bias.
struct LayerNormLayer {
    let weight, bias: Tensor
    let eps: Float

    init(_ p: ParameterSource, _ name: String, width: Int, eps: Double) {
        weight = p.make(name + ".weight", [width], .constant(1))
        bias = p.make(name + ".bias", [width], .constant(0))
        self.eps = Float(eps)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}

/// A linear map, `name`.weight [outputs, inputs] and with `bias` `name`.bias [outputs].
/// `inputMajor` stores the weight as [inputs, outputs] instead (GPT-2's Conv1D).
/// With a `ternary` switch that is on, it is BitNet's BitLinear: ternary weights and 8-bit
/// activations in the forward pass, gradients straight through to the fp32 weights.
struct Linear {
    let weight: Tensor
    let bias: Tensor?
    let inputMajor: Bool
    let ternary: TernarySwitch?

    init(_ p: ParameterSource, _ name: String, inputs: Int, outputs: Int, std: Float, bias: Bool = false,
         inputMajor: Bool = false, ternary: TernarySwitch? = nil) {
        weight = p.make(name + ".weight", inputMajor ? [inputs, outputs] : [outputs, inputs], .normal(std: std))
        self.bias = bias ? p.make(name + ".bias", [outputs], .constant(0)) : nil
        self.inputMajor = inputMajor
        self.ternary = ternary
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        if ternary?.on == true {
            return linear(int8Activations(x), weight: ternaryWeights(weight), bias: bias, inputMajor: inputMajor)
        }
        return linear(x, weight: weight, bias: bias, inputMajor: inputMajor)
    }
}

/// Whether a ternary model's BitLinears quantise: one per model, shared by them. A
/// "16-to-1.58" run trains with it off, then turns it on part-way.
public final class TernarySwitch: @unchecked Sendable {
    public var on: Bool
    init(on: Bool) { self.on = on }
}

/// LLaMA's feed-forward block: down(silu(gate(x)) · up(x)), under `prefix`{gate,up,down}_proj;
/// with `subNorm` (BitNet's SubLN) an RMSNorm `prefix`ffn_sub_norm before down.
struct SwiGLUMLP {
    let gate, up, down: Linear
    let subNorm: RMSNormLayer?

    init(_ p: ParameterSource, _ prefix: String, width: Int, hidden: Int, std: Float, residualStd: Float,
         ternary: TernarySwitch? = nil, subNormEps: Double? = nil) {
        gate = Linear(p, prefix + "gate_proj", inputs: width, outputs: hidden, std: std, ternary: ternary)
        up = Linear(p, prefix + "up_proj", inputs: width, outputs: hidden, std: std, ternary: ternary)
        subNorm = subNormEps.map { RMSNormLayer(p, prefix + "ffn_sub_norm", width: hidden, eps: $0) }
        down = Linear(p, prefix + "down_proj", inputs: hidden, outputs: width, std: residualStd, ternary: ternary)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let hidden = swiglu(gate: gate(x), up: up(x))
        return down(subNorm.map { $0(hidden) } ?? hidden)
    }
}

/// GPT-2's feed-forward block: c_proj(gelu(c_fc(x))), Conv1D weights, under `prefix`.
struct GPT2MLP {
    let fc, projection: Linear

    init(_ p: ParameterSource, _ prefix: String, width: Int, hidden: Int, bias: Bool, std: Float, residualStd: Float) {
        fc = Linear(p, prefix + "c_fc", inputs: width, outputs: hidden, std: std, bias: bias, inputMajor: true)
        projection = Linear(p, prefix + "c_proj", inputs: hidden, outputs: width, std: residualStd, bias: bias, inputMajor: true)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { projection(gelu(fc(x))) }
}

/// Causal self-attention over `heads` query heads and `kvHeads` key/value heads (GQA
/// when fewer), with RoPE or without (positions then come from elsewhere). The input
/// projections are GPT-2's fused Conv1D `c_attn` [d, 3d] or LLaMA's `q_proj`, `k_proj`,
/// `v_proj`; the output projection follows.
struct CausalSelfAttention {
    enum Projections {
        case fused(Linear)
        case separate(q: Linear, k: Linear, v: Linear)
    }

    let projections: Projections
    let output: Linear
    let heads, kvHeads, headSize: Int
    let rotary: RotaryEmbedding?
    /// BitNet's SubLN: an RMSNorm on the heads' concatenated output, before `output`.
    var subNorm: RMSNormLayer? = nil

    private func project(_ y: Tensor) -> Tensor { output(subNorm.map { $0(y) } ?? y) }

    /// [batch, time, d] → [batch, time, d] at positions from `start`; with a cache, earlier
    /// keys and values come from it and this layer's new ones are appended.
    func callAsFunction(_ x: Tensor, layer: Int, start: Int, cache: KVCache?) -> Tensor {
        let batch = x.shape[0], time = x.shape[1], d = heads * headSize, kv = kvHeads * headSize
        var q: Tensor, k: Tensor, v: Tensor
        switch projections {
        case .fused(let qkv):
            let packed = qkv(x)
            if cache == nil && rotary == nil && AttentionRecorder.current == nil {  // training reads q, k and v in place
                return project(attention(packedQKV: packed, heads: heads).reshaped([batch, time, d]))
            }
            let parts = packed.split([d, kv, kv], axis: 2)
            (q, k, v) = (parts[0], parts[1], parts[2])
        case .separate(let qp, let kp, let vp):
            (q, k, v) = (qp(x), kp(x), vp(x))
        }
        q = q.reshaped([batch, time, heads, headSize])
        k = k.reshaped([batch, time, kvHeads, headSize])
        v = v.reshaped([batch, time, kvHeads, headSize])
        if let rotary {
            q = rope(q, rotary, offset: start)
            k = rope(k, rotary, offset: start)
        }
        let (keys, values) = cache?.append(layer: layer, keys: k, values: v) ?? (k, v)
        AttentionRecorder.current?.record(q: q, k: keys)
        return project(attention(q, keys, values).reshaped([batch, time, d]))
    }
}

/// A depthwise causal convolution over time, `name`.weight [width, taps], not weight-decayed:
/// the short convolution (4 taps) and, with as many taps as the context, the long one.
struct CausalConvolution {
    let weight: Tensor

    init(_ p: ParameterSource, _ name: String, width: Int, taps: Int, std: Float) {
        weight = p.make(name + ".weight", [width, taps], .normal(std: std), decay: false)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { causalConv(x, weight: weight) }
}

/// The causal Monarch mixer's factors, `prefix`L1 and `prefix`L2, [heads, p, p, p] with
/// p² = the context, initialised N(0, 1/p) (standard deviation 1/√p).
struct MonarchFactors {
    let l1, l2: Tensor

    init(_ p: ParameterSource, _ prefix: String, heads: Int, context: Int) {
        let n = MonarchFactors.blockSize(context)
        let std = 1 / Float(n).squareRoot()
        l1 = p.make(prefix + "L1", [heads, n, n, n], .normal(std: std), decay: false)
        l2 = p.make(prefix + "L2", [heads, n, n, n], .normal(std: std), decay: false)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { monarchMix(x, l1: l1, l2: l2) }

    /// p with p² = context (the caller validated that it is a perfect square).
    static func blockSize(_ context: Int) -> Int { Int(Double(context).squareRoot().rounded()) }

    static func problems(_ c: ModelConfig) -> [String] {
        let n = blockSize(c.context)
        return n * n == c.context ? [] : ["the context \(c.context) must be a perfect square for the Monarch mixer (p² = context)"]
    }
}
