import Foundation
import SLMTensor

/// What `slm inspect` shows of a model reading one text: how surprised it is by each
/// token, which earlier tokens each attention head reads, the Monarch mixers' matrices
/// and the Symbio organelles' gates.
public struct Inspection: Sendable {
    public var ids: [Int32]
    /// −log₂ p(token t | tokens before t), in bits; position 0 has no prediction (nan).
    public var surprisal: [Double]
    /// Per attention layer and head: the T×T probabilities, row t = query position t.
    public var attention: [[[Float]]]
    /// Per mixer layer and Monarch head: the causal mixing matrix over the text, T×T.
    public var monarch: [[[Float]]]
    /// Per layer and gate, the weight of each channel (Symbio: conv, monarch, long conv).
    public var gates: [[[Float]]]
    public var gateNames: [String]
}

/// Models whose sequence mixing is a matrix or a gate that pictures can show.
public protocol MixerInspectable {
    /// Per layer, per head: the mixing matrix over the first `time` positions, T×T.
    func monarchMatrices(time: Int) -> [[[Float]]]
    /// Names of the gates and, per layer, each gate's weight per channel.
    var gateWeights: (names: [String], layers: [[[Float]]]) { get }
}

extension LanguageModel {
    /// Reads `ids` (at most the context, from position 0) and records what `Inspection` holds.
    public func inspect(_ ids: [Int32]) -> Inspection {
        precondition(!ids.isEmpty && ids.count <= config.context, "inspect: 1…\(config.context) tokens")
        let recorder = AttentionRecorder()
        let logits = AttentionRecorder.$current.withValue(recorder) {
            Autograd.noGrad {
                var none: RNG? = nil
                return forward(ids, batch: 1, time: ids.count, state: nil, dropoutRNG: &none).toArray()
            }
        }
        let v = config.vocabSize
        let surprisal = ids.indices.map { t -> Double in
            guard t > 0 else { return .nan }
            let row = logits[((t - 1) * v)..<(t * v)], top = Double(row.max()!)
            let logSum = top + log(row.reduce(0.0) { $0 + exp(Double($1) - top) })
            return (logSum - Double(row[row.startIndex + Int(ids[t])])) / log(2)
        }
        let mixer = self as? MixerInspectable
        let gates = mixer?.gateWeights
        return Inspection(ids: ids, surprisal: surprisal, attention: recorder.layers,
                          monarch: mixer?.monarchMatrices(time: ids.count) ?? [], gates: gates?.layers ?? [],
                          gateNames: gates?.names ?? [])
    }
}

/// Collects each attention layer's probabilities (batch 1) while it is bound, for
/// `inspect`. Training and decoding never bind one and pay nothing for it.
final class AttentionRecorder: @unchecked Sendable {
    @TaskLocal static var current: AttentionRecorder?
    /// Per layer, per head: [Tq × Tk] row-major.
    private(set) var layers: [[[Float]]] = []

    /// q [1, Tq, Hq, D], k [1, Tk, Hkv, D], after RoPE; query i sees keys j ≤ i + Tk − Tq.
    func record(q: Tensor, k: Tensor) {
        let tq = q.shape[1], hq = q.shape[2], d = q.shape[3], tk = k.shape[1], hkv = k.shape[2]
        let qs = q.toArray(), ks = k.toArray(), scale = 1 / Float(d).squareRoot()
        layers.append((0..<hq).map { h in
            let g = h / (hq / hkv)
            var out = [Float](repeating: 0, count: tq * tk)
            for i in 0..<tq {
                let visible = i + tk - tq + 1
                var scores = (0..<visible).map { j -> Float in
                    var s: Float = 0
                    for c in 0..<d { s += qs[(i * hq + h) * d + c] * ks[(j * hkv + g) * d + c] }
                    return s * scale
                }
                let top = scores.max()!
                var total: Float = 0
                for j in scores.indices { scores[j] = exp(scores[j] - top); total += scores[j] }
                for j in scores.indices { out[i * tk + j] = scores[j] / total }
            }
            return out
        })
    }
}

extension MonarchFactors {
    /// Each head's matrix over the first `time` positions, read off by mixing unit
    /// impulses: batch b holds an impulse at position b, so y[b, t, h] = M_h[t, b].
    func matrices(time: Int) -> [[Float]] {
        let heads = l1.shape[0]
        let x = Tensor(zeros: [time, time, heads])
        for b in 0..<time { for h in 0..<heads { x.data[(b * time + b) * heads + h] = 1 } }
        let y = Autograd.noGrad { monarchMix(x, l1: l1, l2: l2) }.toArray()
        return (0..<heads).map { h in
            var m = [Float](repeating: 0, count: time * time)
            for t in 0..<time { for b in 0..<time { m[t * time + b] = y[(b * time + t) * heads + h] } }
            return m
        }
    }
}
