import SLMTensor

// Small layers that the newer model files compose. Each makes its parameters through a
// ParameterSource under the name it is given, so building and loading share one path.

/// RMSNorm with a learned scale (initialised to 1).
struct RMSNormLayer {
    let weight: Tensor
    let eps: Float

    init(_ p: ParameterSource, _ name: String, width: Int, eps: Double) {
        weight = p.make(name, [width], .constant(1))
        self.eps = Float(eps)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { rmsNorm(x, weight: weight, eps: eps) }
}

/// A linear map without bias, weight [outputs, inputs].
struct Linear {
    let weight: Tensor

    init(_ p: ParameterSource, _ name: String, inputs: Int, outputs: Int, std: Float) {
        weight = p.make(name, [outputs, inputs], .normal(std: std))
    }

    func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight) }
}

/// LLaMA's feed-forward block: down(silu(gate(x)) · up(x)), under `prefix`{gate,up,down}_proj.weight.
struct SwiGLUMLP {
    let gate, up, down: Linear

    init(_ p: ParameterSource, _ prefix: String, width: Int, hidden: Int, std: Float, residualStd: Float) {
        gate = Linear(p, prefix + "gate_proj.weight", inputs: width, outputs: hidden, std: std)
        up = Linear(p, prefix + "up_proj.weight", inputs: width, outputs: hidden, std: std)
        down = Linear(p, prefix + "down_proj.weight", inputs: hidden, outputs: width, std: residualStd)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { down(swiglu(gate: gate(x), up: up(x))) }
}

/// A depthwise causal convolution over time, `name` [width, taps], not weight-decayed:
/// the short convolution (4 taps) and, with as many taps as the context, the long one.
struct CausalConvolution {
    let weight: Tensor

    init(_ p: ParameterSource, _ name: String, width: Int, taps: Int, std: Float) {
        weight = p.make(name, [width, taps], .normal(std: std), decay: false)
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
