import Foundation
import SLMTensor

extension ModelConfig.Architecture {
    /// Three sequence mixers ("organelles") fused per channel by a learned gate.
    public static let symbio = Self(rawValue: "symbio")
}

/// SymbioSLM: LLaMA's blocks (`MixerTrunk`) with attention replaced by three organelles
/// on the same normed input, in this order: a causal convolution (`mixer.conv.weight`
/// [d, 4]), a causal Monarch mixer (`mixer.monarch.L1/L2`) and a causal long convolution
/// as long as the context (`mixer.long_conv.weight` [d, T]), fused per channel by
/// y[t,c] = Σ_o softmax_o(`mixer.gate_logits` [3, d])[o,c] · organelle_o(x)[t,c].
public final class SymbioSLM: MixerTrunkModel {
    static let organelles = 3

    struct Mixer: SequenceMixer {
        let conv: CausalConvolution
        let monarch: MonarchFactors
        let longConv: CausalConvolution
        let gateLogits: Tensor

        init(_ p: ParameterSource, _ prefix: String, _ config: ModelConfig) {
            let d = config.width, T = config.context, K = MonarchSLM.convTaps
            conv = CausalConvolution(p, prefix + "conv", width: d, taps: K, std: 1 / Float(K).squareRoot())
            monarch = MonarchFactors(p, prefix + "monarch.", heads: config.heads, context: T)
            longConv = CausalConvolution(p, prefix + "long_conv", width: d, taps: T, std: 1 / Float(T))
            gateLogits = p.make(prefix + "gate_logits", [organelles, d], .constant(0), decay: false)
        }

        func callAsFunction(_ x: Tensor) -> Tensor {
            let d = gateLogits.shape[1]
            let w = columnSoftmax(gateLogits).split([1, 1, 1], axis: 0).map { $0.reshaped([d]) }
            return w[0] * conv(x) + w[1] * monarch(x) + w[2] * longConv(x)
        }

        func step(_ memory: MixerMemory, position t: Int, into out: UnsafeMutablePointer<Float>) {
            let d = memory.width, logits = UnsafePointer(gateLogits.data)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * d) { rows in
                let short = rows.baseAddress!, mixed = short + d, long = short + 2 * d
                conv.step(memory, position: t, into: short)
                monarch.step(memory, position: t, into: mixed)
                longConv.step(memory, position: t, into: long)
                for c in 0..<d {
                    let l0 = logits[c], l1 = logits[d + c], l2 = logits[2 * d + c], top = max(l0, l1, l2)
                    let e0 = exp(l0 - top), e1 = exp(l1 - top), e2 = exp(l2 - top)
                    out[c] = (e0 * short[c] + e1 * mixed[c] + e2 * long[c]) / (e0 + e1 + e2)
                }
            }
        }

        func catchUp(_ memory: MixerMemory, count: Int) { monarch.catchUp(memory, count: count) }

        /// softmax over the organelles of gate_logits, [3, d] row-major.
        var gates: [Float] { Autograd.noGrad { columnSoftmax(gateLogits) }.toArray() }
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

    /// The gate entropy and each organelle's mean weight, per layer.
    public var layerMetrics: [String: [Double]] {
        var metrics = ["gate_entropy": gateEntropies]
        let d = config.width, weights = trunk.blocks.map(\.mixer.gates)
        for (o, name) in Self.organelleNames.enumerated() {
            metrics["gate_" + name] = weights.map { w in w[(o * d)..<((o + 1) * d)].reduce(0.0) { $0 + Double($1) } / Double(d) }
        }
        return metrics
    }

    static let organelleNames = ["conv", "monarch", "long_conv"]

    /// Each layer's mean gate entropy in nats (ln 3 for an equal mix, 0 for one organelle).
    public var gateEntropies: [Double] {
        trunk.blocks.map { b in
            let w = b.mixer.gates, d = config.width
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
        defaults: .llamaLike,
        validate: { MonarchFactors.problems($0) + MixerTrunk<Mixer>.problems($0) },
        parameterCount: { c in
            let d = c.width, n = MonarchFactors.blockSize(c.context)
            return MixerTrunk<Mixer>.parameterCount(
                c, mixer: d * MonarchSLM.convTaps + 2 * c.heads * n * n * n + d * c.context + organelles * d)
        },
        flopsPerToken: { c in
            // As MonarchSLM, plus the long convolution over the whole context (an upper bound).
            let n = MonarchFactors.blockSize(c.context)
            return MixerTrunk<Mixer>.flopsPerToken(c, mixer: 2 * Double(c.width) * Double(MonarchSLM.convTaps + 3 * n + c.context))
        },
        build: { SymbioSLM($0, $1) },
        decodingWeights: { DecodingWeights(trunk: ($0 as! SymbioSLM).trunk, of: $0, precision: $1) },
        huggingFaceConfig: nil)
}

extension SymbioSLM: MixerInspectable {
    public func monarchMatrices(time: Int) -> [[[Float]]] { trunk.blocks.map { $0.mixer.monarch.matrices(time: time) } }

    public var gateWeights: (names: [String], layers: [[[Float]]]) {
        let d = config.width
        return (Self.organelleNames, trunk.blocks.map { b in
            let w = b.mixer.gates
            return (0..<Self.organelles).map { Array(w[($0 * d)..<(($0 + 1) * d)]) }
        })
    }
}
