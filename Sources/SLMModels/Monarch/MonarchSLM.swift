import Foundation
import SLMTensor

extension ModelConfig.Architecture {
    /// Sub-quadratic: a causal convolution plus a causal Monarch mixer instead of attention.
    public static let monarch = Self(rawValue: "monarch")
}

/// MonarchSLM: LLaMA's blocks (`MixerTrunk`) with attention replaced by
/// mixer(x) = sigmoid(gate) ⊙ (conv(x) + monarch(x)): a causal depthwise convolution of
/// `convTaps` taps and a causal Monarch mixer with `heads` heads over p² = context
/// positions. No positional encoding, no projection in the mixer.
/// Parameters: `model.layers.{i}.mixer.{conv.weight, monarch.L1, monarch.L2, gate}`.
public final class MonarchSLM: MixerTrunkModel {
    static let convTaps = 4

    struct Mixer: SequenceMixer {
        let conv: CausalConvolution
        let monarch: MonarchFactors
        let gate: Tensor

        init(_ p: ParameterSource, _ prefix: String, _ config: ModelConfig) {
            conv = CausalConvolution(p, prefix + "conv", width: config.width, taps: convTaps,
                                     std: 1 / Float(convTaps).squareRoot())
            monarch = MonarchFactors(p, prefix + "monarch.", heads: config.heads, context: config.context)
            gate = p.make(prefix + "gate", [config.width], .constant(0))
        }

        func callAsFunction(_ x: Tensor) -> Tensor { sigmoid(gate) * (conv(x) + monarch(x)) }

        func step(_ memory: MixerMemory, position t: Int, into out: UnsafeMutablePointer<Float>) {
            let d = memory.width, g = UnsafePointer(gate.data)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: d) { convolved in
                conv.step(memory, position: t, into: convolved.baseAddress!)
                monarch.step(memory, position: t, into: out)
                for c in 0..<d { out[c] = (convolved[c] + out[c]) / (1 + exp(-g[c])) }
            }
        }

        func catchUp(_ memory: MixerMemory, count: Int) { monarch.catchUp(memory, count: count) }
    }

    public let config: ModelConfig
    public let parameters: [(name: String, tensor: Tensor)]
    public let parameterDecays: [Bool]
    let trunk: MixerTrunk<Mixer>

    init(_ config: ModelConfig, _ p: ParameterSource) {
        self.config = config
        trunk = MixerTrunk(config, p) { Mixer(p, $0, config) }
        parameters = p.made
        parameterDecays = p.decays
    }

    static let definition = ArchitectureDefinition(
        name: .monarch,
        defaults: .llamaLike,
        validate: { MonarchFactors.problems($0) + MixerTrunk<Mixer>.problems($0) },
        parameterCount: { c in
            let n = MonarchFactors.blockSize(c.context)
            return MixerTrunk<Mixer>.parameterCount(c, mixer: c.width * convTaps + 2 * c.heads * n * n * n + c.width)
        },
        flopsPerToken: { c in
            // Per channel: the convolution's taps and the Monarch products (a full and a
            // triangular block product, and the combination over blocks).
            let n = MonarchFactors.blockSize(c.context)
            return MixerTrunk<Mixer>.flopsPerToken(c, mixer: 2 * Double(c.width) * Double(convTaps + 3 * n))
        },
        build: { MonarchSLM($0, $1) },
        decodingWeights: { DecodingWeights(trunk: ($0 as! MonarchSLM).trunk, of: $0, precision: $1) },
        huggingFaceConfig: nil)
}

extension MonarchSLM: MixerInspectable {
    public func monarchMatrices(time: Int) -> [[[Float]]] { trunk.blocks.map { $0.mixer.monarch.matrices(time: time) } }

    /// The gate sigmoid(gate) that scales the mixer's output, per channel.
    public var gateWeights: (names: [String], layers: [[[Float]]]) {
        (["sigmoid(gate)"], trunk.blocks.map { b in [b.mixer.gate.toArray().map { 1 / (1 + exp(-$0)) }] })
    }
}
