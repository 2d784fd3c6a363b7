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
struct Linear {
    let weight: Tensor
    let bias: Tensor?
    let inputMajor: Bool

    init(_ p: ParameterSource, _ name: String, inputs: Int, outputs: Int, std: Float, bias: Bool = false,
         inputMajor: Bool = false) {
        weight = p.make(name + ".weight", inputMajor ? [inputs, outputs] : [outputs, inputs], .normal(std: std))
        self.bias = bias ? p.make(name + ".bias", [outputs], .constant(0)) : nil
        self.inputMajor = inputMajor
    }

    func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias, inputMajor: inputMajor) }
}

/// LLaMA's feed-forward block: down(silu(gate(x)) · up(x)), under `prefix`{gate,up,down}_proj.
struct SwiGLUMLP {
    let gate, up, down: Linear

    init(_ p: ParameterSource, _ prefix: String, width: Int, hidden: Int, std: Float, residualStd: Float) {
        gate = Linear(p, prefix + "gate_proj", inputs: width, outputs: hidden, std: std)
        up = Linear(p, prefix + "up_proj", inputs: width, outputs: hidden, std: std)
        down = Linear(p, prefix + "down_proj", inputs: hidden, outputs: width, std: residualStd)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { down(swiglu(gate: gate(x), up: up(x))) }
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

    /// [batch, time, d] → [batch, time, d] at positions from `start`; with a cache, earlier
    /// keys and values come from it and this layer's new ones are appended.
    func callAsFunction(_ x: Tensor, layer: Int, start: Int, cache: KVCache?) -> Tensor {
        let batch = x.shape[0], time = x.shape[1], d = heads * headSize, kv = kvHeads * headSize
        var q: Tensor, k: Tensor, v: Tensor
        switch projections {
        case .fused(let qkv):
            let packed = qkv(x)
            if cache == nil && rotary == nil && AttentionRecorder.current == nil {  // training reads q, k and v in place
                return output(attention(packedQKV: packed, heads: heads).reshaped([batch, time, d]))
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
        return output(attention(q, keys, values).reshaped([batch, time, d]))
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
